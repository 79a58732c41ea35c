"""Everything that differs between stages, in one typed object.

It imports nothing from aws_cdk (which would start a jsii kernel), so scripts can read it cheaply; the stack
translates the plain values here into CDK types. The functions' settings a stage sets (limits, quotas, retention,
streaming) are declared once in ``assistant.environment.SETTINGS``, with their defaults, bounds and checks, which
the local stack reads too; this module adds what only the stack reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.providers import ModelProvider
from assistant.stage_settings import StageSettings
from assistant.stage_throttles import DEV_THROTTLES, PROD_THROTTLES, StageThrottles
from infra.names import DEFAULT_STAGE, validate_stage_name

#: The stage whose data outlives a ``cdk destroy`` and whose stack has termination protection.
PRODUCTION_STAGE = "prod"
#: Log retention periods CloudWatch Logs accepts that we use (the stack maps them to ``RetentionDays``).
SUPPORTED_LOG_RETENTION_DAYS = (7, 14, 30, 90, 180, 365)
#: What Lambda accepts as an SQS event source's maximum concurrency.
MAX_CONCURRENCY_RANGE = range(2, 1001)
#: What Cognito accepts as an app client's access-token lifetime (5 minutes to 1 day) and refresh-token lifetime
#: (60 minutes to 10 years; whole days here).
ACCESS_TOKEN_MINUTES_RANGE = range(5, 24 * 60 + 1)
REFRESH_TOKEN_DAYS_RANGE = range(1, 3650 + 1)


@dataclass(frozen=True, kw_only=True)
class StageConfig(StageSettings):
    """A stage: its functions' settings (:class:`~assistant.environment.StageSettings`: limits, quotas, retention,
    streaming; declared once in ``assistant.environment.SETTINGS``) and what only the stack reads."""

    name: str
    #: Retain the table, the secret, the user pool and the log groups when the stack is deleted, and protect the
    #: stack and table from deletion. Dev stages are disposable; prod holds users' conversations.
    retain_data: bool
    log_retention_days: int
    #: Origins the attachments bucket's CORS allows when the stage hosts no page (the page's own origin otherwise):
    #: where a page served elsewhere (``scripts.web_config``) runs.
    attachment_origins: tuple[str, ...] = ("http://127.0.0.1:8000",)
    #: The app client's access-token lifetime (5-1440 minutes, what Cognito accepts). The page and the terminal
    #: client renew it from the refresh token; an open connection ends with it (``token_expired``).
    access_token_validity_minutes: int = 15
    #: The refresh token's lifetime (1-3650 days): how long a sign-in lasts without the password.
    refresh_token_validity_days: int = 7
    #: Cognito threat protection (adaptive authentication, compromised-credential checks) in enforced mode, which
    #: needs the Plus feature plan (billed per monthly active user: docs/deploy.md). On for ``prod``
    #: (``--context threatProtection=true|false``).
    threat_protection: bool = False
    #: ``None`` keeps the package's default model; a stage may pin another (``--context model=<id>``). A Bedrock
    #: stage without one gets its profile's ``default_model`` (ids differ per endpoint; its IAM grant names it).
    model: str | None = None
    #: Which server of the Responses API the stage talks to, and what it can do (``--context provider=bedrock``
    #: for Amazon Bedrock, requests signed with the worker's role; ``openai-compatible`` for a stateless server);
    #: see docs/providers.md.
    model_provider: ModelProvider = ModelProvider.OPENAI
    #: ``None`` deploys the packaged ``assistant.toml``; a path deploys that definition file instead
    #: (``--context assistantFile=<path>``; see ``infra.definition``).
    assistant_file: Path | None = None
    #: API Gateway's throttles for the WebSocket stage (shared by all users): the stage's pool, and pools of their
    #: own for ``$connect`` and ``sendMessage`` (``assistant.stage_throttles``; the local gateway applies the same).
    throttles: StageThrottles = DEV_THROTTLES
    #: Off everywhere by default: each user costs model tokens, so an operator creates users
    #: (``scripts/create_user.py``) unless a stage explicitly opens sign-up.
    allow_self_sign_up: bool = False
    log_level: str = "INFO"
    #: Empty: the app client has no OAuth flows (clients sign in through the API). Set to use Cognito's hosted
    #: sign-in page; the URLs become the client's callback and sign-out URLs.
    hosted_sign_in_callback_urls: tuple[str, ...] = ()
    #: Subscribed by e-mail to the alarm topic (``--context alarmEmail=ops@example.com``); ``None``: the topic has
    #: no subscription, and an operator subscribes whatever they like to its ARN.
    alarm_email: str | None = None
    #: Worker invocations the queue may run at once. Each streams one reply for up to minutes, so this caps the
    #: model calls in flight (and their cost) and leaves the account's Lambda concurrency to the routes.
    worker_max_concurrency: int = 50
    #: Lambda SnapStart for the worker (``--context snapStart=true|false``; docs/scaling.md, "SnapStart"). Its cold
    #: start is on the path to a user's first text and is the heaviest we have (its import plus the ``openai`` SDK;
    #: measured in docs/benchmarks.md, "Cold start"). A steady production stage amortizes
    #: the snapshot's cache charge; a disposable stage mostly idles, would pay it for nothing, and every deploy of it
    #: would wait for a snapshot. The route functions and the authorizer never get it (docs/scaling.md says why).
    worker_snap_start: bool = False
    #: Host the chat page (``web/``) on CloudFront from a private bucket, configured from this stack's outputs
    #: (``infra.web_hosting``; the ``WebUrl`` output). Off: no bucket, no distribution; host ``web/`` elsewhere with
    #: ``scripts.web_config``.
    web_hosting: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()  # the functions' settings, each checked as the functions check it
        validate_stage_name(self.name)
        if self.model is None and self.model_provider.capabilities.default_model is not None:
            object.__setattr__(self, "model", self.model_provider.capabilities.default_model)
        if self.log_retention_days not in SUPPORTED_LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {SUPPORTED_LOG_RETENTION_DAYS}")
        if self.worker_max_concurrency not in MAX_CONCURRENCY_RANGE:
            raise ValueError(
                f"worker_max_concurrency must be {MAX_CONCURRENCY_RANGE.start}-{MAX_CONCURRENCY_RANGE.stop - 1} "
                f"(what Lambda accepts), got {self.worker_max_concurrency}"
            )
        bounded = {
            "access_token_validity_minutes": (self.access_token_validity_minutes, ACCESS_TOKEN_MINUTES_RANGE),
            "refresh_token_validity_days": (self.refresh_token_validity_days, REFRESH_TOKEN_DAYS_RANGE),
        }
        for field_name, (value, allowed) in bounded.items():
            if value not in allowed:
                raise ValueError(f"{field_name} must be {allowed.start}-{allowed.stop - 1}, got {value}")
        if self.alarm_email is not None and not _looks_like_email(self.alarm_email):
            raise ValueError(f"alarm_email must be an e-mail address, got {self.alarm_email!r}")

    @property
    def throttle_rate_limit(self) -> float:
        """The stage's default steady-state requests per second (routes without a pool of their own)."""
        return self.throttles.stage.rate_limit

    @property
    def throttle_burst_limit(self) -> int:
        return self.throttles.stage.burst_limit

    @property
    def is_production(self) -> bool:
        return self.name == PRODUCTION_STAGE

    @classmethod
    def for_stage(cls, name: str = DEFAULT_STAGE) -> StageConfig:
        """``prod`` gets the durable profile; any other name (``dev``, ``alice``, ``pr-42``) a disposable one, so a
        developer can deploy a personal stage next to the shared ones."""
        if name == PRODUCTION_STAGE:
            return cls(
                name=name,
                retain_data=True,
                log_retention_days=90,
                throttles=PROD_THROTTLES,
                worker_max_concurrency=200,
                worker_snap_start=True,
                threat_protection=True,
            )
        return cls(name=name, retain_data=False, log_retention_days=7)


def _looks_like_email(address: str) -> bool:
    """A plausibility check only (SNS sends the confirmation that proves the address): one ``@``, a dot in the
    domain, no spaces."""
    local, at, domain = address.partition("@")
    if not local or not at or "@" in domain or any(c.isspace() for c in address):
        return False
    return "." in domain.strip(".")
