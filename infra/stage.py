"""Everything that differs between stages, in one typed object.

The CDK stack and the local stack both read this module, so it imports nothing from aws_cdk (which would start a
jsii kernel); the stack translates the plain values here into CDK types.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS, STAGE_DEFAULTS
from infra.names import DEFAULT_STAGE, validate_stage_name

#: The stage whose data outlives a ``cdk destroy`` and whose stack has termination protection.
PRODUCTION_STAGE = "prod"
#: Log retention periods CloudWatch Logs accepts that we use (the stack maps them to ``RetentionDays``).
SUPPORTED_LOG_RETENTION_DAYS = (7, 14, 30, 90, 180, 365)


@dataclass(frozen=True)
class StageConfig:
    name: str
    #: Retain the table, the secret, the user pool and the log groups when the stack is deleted, and protect the
    #: stack and table from deletion. Dev stages are disposable; prod holds users' conversations.
    retain_data: bool
    log_retention_days: int
    daily_message_quota: int = STAGE_DEFAULTS.daily_message_quota
    daily_output_token_quota: int = STAGE_DEFAULTS.daily_output_token_quota
    flush_interval_ms: int = STAGE_DEFAULTS.flush_interval_ms
    flush_chars: int = STAGE_DEFAULTS.flush_chars
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    #: ``None`` keeps the package's default model; a stage may pin another (``--context model=<id>``).
    model: str | None = None
    #: Steady-state requests per second and burst for every route of the WebSocket stage.
    throttle_rate_limit: float = 10.0
    throttle_burst_limit: int = 20
    #: Off everywhere by default: each user costs model tokens, so an operator creates users
    #: (``scripts/create_user.py``) unless a stage explicitly opens sign-up.
    allow_self_sign_up: bool = False
    log_level: str = "INFO"
    #: Empty: the app client has no OAuth flows (clients sign in through the API). Set to use Cognito's hosted
    #: sign-in page; the URLs become the client's callback and sign-out URLs.
    hosted_sign_in_callback_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_stage_name(self.name)
        if self.log_retention_days not in SUPPORTED_LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {SUPPORTED_LOG_RETENTION_DAYS}")
        positive = {
            "daily_message_quota": self.daily_message_quota,
            "daily_output_token_quota": self.daily_output_token_quota,
            "flush_interval_ms": self.flush_interval_ms,
            "flush_chars": self.flush_chars,
            "max_message_chars": self.max_message_chars,
            "throttle_rate_limit": self.throttle_rate_limit,
            "throttle_burst_limit": self.throttle_burst_limit,
        }
        for field_name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{field_name} must be positive, got {value}")

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
                throttle_rate_limit=50.0,
                throttle_burst_limit=100,
            )
        return cls(name=name, retain_data=False, log_retention_days=7)
