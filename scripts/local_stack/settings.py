"""What the local stack is started with (:class:`LocalStackSettings`) and what it tells its users once it runs
(:class:`StackInfo`: ``.local/stack.json`` and the web page's ``config.json``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.environment import SETTINGS, Env
from assistant.stage_settings import STAGE_DEFAULTS
from assistant.stage_throttles import DEV_THROTTLES, StageThrottles
from assistant.wiring import QUEUE, WORKER
from scripts.local_stack.gateway.server import IDLE_TIMEOUT_S, MAX_CONNECTION_AGE_S
from scripts.local_stack.gateway.static import DEMO_SIGN_IN_PATH
from scripts.local_stack.lambda_runtime.invocation import REPO_ROOT, HandlerResolver, Isolation, import_handler
from scripts.local_stack.offline_model import Pace, Profile
from scripts.local_stack.offline_model.store import PROFILES

STAGE = "local"
STACK_JSON = REPO_ROOT / ".local" / "stack.json"
#: Where each function's log stream goes in process isolation: ``<function>.log`` (CloudWatch Logs, locally).
LOG_DIR = REPO_ROOT / ".local" / "logs"
WEB_DIR = REPO_ROOT / "web"


@dataclass
class LocalStackSettings:
    port: int = 8080
    host: str = "127.0.0.1"
    stage: str = STAGE
    model_pace: Pace = field(default_factory=Pace)
    #: As deployed: well above the worker's timeout, so a slow reply is never delivered to a second worker while
    #: the first still streams it. Handled failures come back within seconds anyway (``MessageQueue.retry_soon``).
    visibility_timeout_s: int = QUEUE.visibility_timeout_factor * WORKER.timeout_seconds
    idle_timeout_s: float = IDLE_TIMEOUT_S
    max_connection_age_s: float = MAX_CONNECTION_AGE_S
    poller_concurrency: int = 10
    #: Powertools' level for the handlers' own logs (their log files in process isolation, the console in thread
    #: isolation, where WARNING keeps it to errors and the connect info).
    handler_log_level: str = "WARNING"
    #: Where to write the connect info for other tools; ``None`` writes nothing (tests).
    stack_json: Path | None = STACK_JSON
    web_dir: Path | None = WEB_DIR
    #: "process": every function in containers of its own, with exactly the environment it has when deployed and
    #: Powertools' metrics on, so a variable the wiring forgot fails here as in AWS. "thread": every handler in this
    #: process under the union of all functions' environments, metrics off; only for tests that must reach into the
    #: handlers' process (fault injection, replaced handler ``dependencies``) or inject a ``resolver``. It cannot catch
    #: a missing variable or a failing metrics flush. See ``scripts.local_stack.lambda_runtime``.
    isolation: Isolation = "process"
    #: Each function's log file (``<function>.log``: its logs, its EMF metrics) in process isolation.
    log_dir: Path = LOG_DIR
    #: Injected by tests that run without ``lambdas/`` (thread isolation only: a resolver's handlers live in this
    #: process); by default the real handlers are imported at start.
    resolver: HandlerResolver = import_handler
    openai_api_key: str | None = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY") or None)
    openai_base_url: str | None = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or None)
    #: The provider profile the functions get (``MODEL_PROVIDER``). ``None``: ``openai-compatible`` when the model
    #: is stateless (``OPENAI_BASE_URL`` is set, or the offline model runs stateless), else ``openai``.
    model_provider: str | None = field(default_factory=lambda: os.environ.get("MODEL_PROVIDER") or None)
    #: The offline model's dialect (``OFFLINE_MODEL_PROFILE``): ``openai`` (default) or ``stateless`` (only
    #: ``POST /v1/responses``, like vLLM or Ollama). Used only when no real model is configured.
    offline_model_profile: Profile = field(default_factory=lambda: _offline_profile_from_environment())
    #: The assistant definition the functions load. ``None``: ``ASSISTANT_FILE`` if set, else the packaged one plus
    #: the demo MCP server, which the stack then starts (see ``scripts.local_stack.local_definition``).
    assistant_file: Path | None = None
    #: Quotas, rate limits and frame pacing: the ``dev`` stage's, overridable from the environment (benchmarks and
    #: tests that send more than a person would raise them here).
    limits: dict[Env, str] = field(default_factory=lambda: limits_from_environment())
    #: API Gateway's throttles, which the gateway applies as API Gateway does
    #: (``scripts.local_stack.gateway.throttle``): the ``dev`` stage's, so a flood shows in ``make dev`` as it would
    #: deployed. ``None``: none (benchmarks).
    throttles: StageThrottles | None = DEV_THROTTLES


@dataclass(frozen=True)
class StackInfo:
    websocket_url: str
    web_url: str
    callback_url: str
    region: str
    cognito_endpoint: str
    user_pool_id: str
    user_pool_client_id: str
    demo_username: str
    demo_password: str
    #: "offline" (the built-in demo model), "openai", or "custom" (``OPENAI_BASE_URL``).
    model: str
    model_base_url: str | None
    #: The table, for operators' scripts (``scripts.delete_user_data --local``); not served to the page.
    table_name: str = ""

    def stack_json(self) -> dict[str, Any]:
        """What ``.local/stack.json`` holds: how scripts and tests connect."""
        return {
            "websocketUrl": self.websocket_url,
            "region": self.region,
            "cognitoEndpoint": self.cognito_endpoint,
            "userPoolId": self.user_pool_id,
            "userPoolClientId": self.user_pool_client_id,
            "demoUsername": self.demo_username,
            "demoPassword": self.demo_password,
            "webUrl": self.web_url,
            "callbackUrl": self.callback_url,
            "modelBaseUrl": self.model_base_url,
            "tableName": self.table_name,
        }

    def public_config(self) -> dict[str, Any]:
        """What the web page gets at ``/config.json``: everything but the password. One-click demo sign-in goes
        through ``demoSignIn`` instead (the gateway signs the demo user in and hands the page only the tokens), so
        the password is never served, not even on 127.0.0.1."""
        config = self.stack_json()
        del config["demoPassword"]
        del config["tableName"]
        config["demoSignIn"] = DEMO_SIGN_IN_PATH
        return config


#: Limits ``make dev`` applies: every stage setting's default (``assistant.stage_settings.STAGE_DEFAULTS``), each
#: overridable by the variable of the same name in the environment ``make dev`` runs in (docs/settings.md).
LOCAL_LIMIT_DEFAULTS: dict[Env, str] = STAGE_DEFAULTS.environment()


def limits_from_environment(environ: Mapping[str, str] | None = None) -> dict[Env, str]:
    """The local limits, with the developer's overrides; a bad value fails the start with the variable's name."""
    env = os.environ if environ is None else environ
    values = {name: env.get(name.value) or default for name, default in LOCAL_LIMIT_DEFAULTS.items()}
    for name, value in values.items():
        SETTINGS[name].parse(value)  # the functions' own check: raises InvalidSetting, naming the setting
    return values


def _offline_profile_from_environment() -> Profile:
    value = os.environ.get("OFFLINE_MODEL_PROFILE") or "openai"
    for profile in PROFILES:
        if value == profile:
            return profile
    raise ValueError(f"OFFLINE_MODEL_PROFILE must be one of {', '.join(PROFILES)}, got {value!r}")
