"""Starts and stops the whole system on one machine: moto, the resources, the model, the gateway, the poller.

Everything is wired from ``assistant.wiring`` (functions, routes, environment names, queue settings), so the local
stack cannot drift from what the CDK stacks deploy. How the handlers run is ``LocalStackSettings.isolation``:
"process" (the default) gives each function containers of its own with exactly its deployed environment and
metrics on (``ProcessLambdaRuntime``); "thread" runs them all in this process, which is why :class:`LocalStack`
then sets the union of every function's environment in ``os.environ`` while it runs and restores the previous
values when it stops (see ``scripts.local_stack.lambda_runtime`` for what that mode cannot catch).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from assistant.settings import Settings
from assistant.wiring import DEFAULT_MAX_MESSAGE_CHARS, FUNCTIONS, QUEUE, STAGE_DEFAULTS, WORKER, Env, ModelProvider
from scripts.local_stack.aws import FAKE_CREDENTIALS, REGION, MotoServer, Resources, client, provision
from scripts.local_stack.gateway import DEMO_SIGN_IN_PATH, IDLE_TIMEOUT_S, MAX_CONNECTION_AGE_S, Gateway
from scripts.local_stack.lambda_runtime import (
    REPO_ROOT,
    HandlerResolver,
    Isolation,
    LambdaRuntime,
    ProcessLambdaRuntime,
    import_handler,
)
from scripts.local_stack.local_definition import LocalDefinition
from scripts.local_stack.offline_model import Pace, Profile, RunningOfflineModel, start_async
from scripts.local_stack.offline_model_store import PROFILES
from scripts.local_stack.poller import QueuePoller

log = logging.getLogger("local_stack")

STAGE = "local"
STACK_JSON = REPO_ROOT / ".local" / "stack.json"
#: Where each function's log stream goes in process isolation: ``<function>.log`` (CloudWatch Logs, locally).
LOG_DIR = REPO_ROOT / ".local" / "logs"
WEB_DIR = REPO_ROOT / "web"
#: Environment variables that must not leak into the handlers: they would point boto3 at a real account.
_REAL_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


@dataclass
class LocalStackSettings:
    port: int = 8080
    host: str = "127.0.0.1"
    stage: str = STAGE
    model_pace: Pace = field(default_factory=Pace)
    #: As deployed: well above the worker's timeout, so a slow reply is never delivered to a second worker while
    #: the first still streams it. Handled failures come back within seconds anyway (``assistant.queue.retry_soon``).
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
    #: handlers' process (fault injection, patched ``assistant.runtime``) or inject a ``resolver``. It cannot catch
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
        }

    def public_config(self) -> dict[str, Any]:
        """What the web page gets at ``/config.json``: everything but the password. One-click demo sign-in goes
        through ``demoSignIn`` instead (the gateway signs the demo user in and hands the page only the tokens), so
        the password is never served, not even on 127.0.0.1."""
        config = self.stack_json()
        del config["demoPassword"]
        config["demoSignIn"] = DEMO_SIGN_IN_PATH
        return config


class LocalStack:
    """The whole system on 127.0.0.1. ``await start()``/``await stop()``, or ``with LocalStack(...) as info:``."""

    def __init__(self, settings: LocalStackSettings | None = None) -> None:
        self.settings = settings or LocalStackSettings()
        self.moto: MotoServer | None = None
        self.resources: Resources | None = None
        self.offline_model: RunningOfflineModel | None = None
        self.runtime: LambdaRuntime | ProcessLambdaRuntime | None = None
        self.gateway: Gateway | None = None
        self.poller: QueuePoller | None = None
        self.info: StackInfo | None = None
        self.definition: LocalDefinition | None = None
        self._saved_env: dict[str, str | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- async API ---

    async def start(self) -> StackInfo:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> StackInfo:
        settings = self.settings
        if settings.host != "127.0.0.1":
            raise ValueError("the local stack listens on 127.0.0.1 only")
        if settings.isolation == "process" and settings.resolver is not import_handler:
            raise ValueError("a resolver's handlers run in this process: use isolation='thread'")
        self.moto = MotoServer()
        endpoint = await asyncio.to_thread(self.moto.start)
        resources = self.resources = await asyncio.to_thread(
            provision,
            endpoint,
            prefix=settings.stage,
            visibility_timeout_s=settings.visibility_timeout_s,
            openai_api_key=settings.openai_api_key,
        )
        model, model_base_url = await self._start_model()
        definition = self.definition = LocalDefinition(
            settings.assistant_file, directory=settings.stack_json.parent if settings.stack_json else None
        )
        await asyncio.to_thread(definition.start)
        await asyncio.to_thread(definition.store_secrets, client("secretsmanager", endpoint))

        local_values: dict[Env, str | None] = {}
        if settings.isolation == "process":
            self.runtime = ProcessLambdaRuntime(
                # Read when the containers start, after the gateway knows its callback URL.
                lambda: local_values,
                endpoint_url=resources.endpoint,
                log_dir=settings.log_dir,
                stage=settings.stage,
                region=REGION,
                # As many worker containers as batches in flight; a few per route function.
                max_containers={WORKER.name: settings.poller_concurrency},
            )
        else:
            self.runtime = LambdaRuntime(settings.resolver, stage=settings.stage, region=REGION)
        self.gateway = Gateway(
            self.runtime,
            stage=settings.stage,
            region=REGION,
            idle_timeout_s=settings.idle_timeout_s,
            max_connection_age_s=settings.max_connection_age_s,
            web_dir=settings.web_dir,
            public_config=self._public_config,
            demo_sign_in=self._demo_sign_in,
        )
        await self.gateway.start(settings.host, settings.port)
        local_values |= self._local_values(resources, self.gateway.callback_url, model_base_url)
        if settings.isolation == "thread":
            # Handlers may read their environment at import, so it is set before they are loaded.
            self._set_env(self._union_env(local_values, resources))
        await asyncio.to_thread(self.runtime.preload, FUNCTIONS)

        self.poller = QueuePoller(
            client("sqs", endpoint),
            queue_url=resources.queue_url,
            queue_arn=resources.queue_arn,
            invoker=self.runtime,
            region=REGION,
            concurrency=settings.poller_concurrency,
        )
        self.poller.start()

        self.info = StackInfo(
            websocket_url=self.gateway.websocket_url,
            web_url=self.gateway.base_url + "/",
            callback_url=self.gateway.callback_url,
            region=REGION,
            # moto answers CORS itself (flask-cors), so the page calls Cognito there directly, as it would in AWS.
            cognito_endpoint=endpoint,
            user_pool_id=resources.user_pool_id,
            user_pool_client_id=resources.user_pool_client_id,
            demo_username=resources.demo_username,
            demo_password=resources.demo_password,
            model=model,
            model_base_url=model_base_url,
        )
        if settings.stack_json is not None:
            _write_private(settings.stack_json, json.dumps(self.info.stack_json(), indent=2) + "\n")
        return self.info

    async def _start_model(self) -> tuple[str, str | None]:
        settings = self.settings
        if settings.openai_base_url:
            return "custom", settings.openai_base_url
        if settings.openai_api_key:
            return "openai", None
        self.offline_model = await start_async(
            "127.0.0.1", 0, pace=settings.model_pace, profile=settings.offline_model_profile
        )
        return "offline", self.offline_model.base_url

    def _model_provider(self, model_base_url: str | None) -> str:
        """``MODEL_PROVIDER`` if the developer set it; otherwise what the model server can do: a custom
        ``OPENAI_BASE_URL`` is assumed stateless (vLLM, Ollama...), OpenAI itself and the offline model's default
        dialect are ``openai``."""
        settings = self.settings
        if settings.model_provider:
            return ModelProvider(settings.model_provider).value
        stateless_offline = self.offline_model is not None and settings.offline_model_profile == "stateless"
        if stateless_offline or (model_base_url is not None and self.offline_model is None):
            return ModelProvider.OPENAI_COMPATIBLE.value
        return ModelProvider.OPENAI.value

    async def _demo_sign_in(self) -> dict[str, Any]:
        """Cognito's answer to the demo user's USER_PASSWORD_AUTH (for the page's one-click sign-in)."""
        resources = self.resources
        if resources is None:
            raise RuntimeError("the stack is still starting")
        cognito = client("cognito-idp", resources.endpoint)
        answer = await asyncio.to_thread(
            cognito.initiate_auth,
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=resources.user_pool_client_id,
            AuthParameters={"USERNAME": resources.demo_username, "PASSWORD": resources.demo_password},
        )
        return {"AuthenticationResult": answer["AuthenticationResult"]}

    def _public_config(self) -> dict[str, Any]:
        if self.info is None:
            raise RuntimeError("the stack is still starting")
        return self.info.public_config()

    def _local_values(
        self, resources: Resources, callback_url: str, model_base_url: str | None
    ) -> dict[Env, str | None]:
        """The local value of every variable a function may declare (``None``: left unset, as deployed); fails if
        the wiring names one this stack has no value for."""
        values: dict[Env, str | None] = {
            Env.TABLE_NAME: resources.table_name,
            Env.QUEUE_URL: resources.queue_url,
            Env.CALLBACK_URL: callback_url,
            Env.USER_POOL_ID: resources.user_pool_id,
            Env.USER_POOL_CLIENT_ID: resources.user_pool_client_id,
            Env.COGNITO_ISSUER: resources.cognito_issuer,
            Env.COGNITO_JWKS_URL: resources.jwks_url,
            Env.OPENAI_SECRET_NAME: resources.secret_name,
            # Unset for OpenAI itself: the SDK's default endpoint is the right one.
            Env.OPENAI_BASE_URL: model_base_url,
            Env.MODEL_PROVIDER: self._model_provider(model_base_url),
            **self.settings.limits,
            Env.MAX_RECEIVE_COUNT: str(QUEUE.max_receive_count),
            # Optional: a developer may pick a model for the whole stack.
            Env.MODEL_OVERRIDE: os.environ.get(Env.MODEL_OVERRIDE.value) or None,
            Env.MODEL_READ_TIMEOUT_MS: os.environ.get(Env.MODEL_READ_TIMEOUT_MS.value) or None,
            # The developer's ASSISTANT_FILE, or the packaged definition plus the demo MCP server (LocalDefinition).
            Env.ASSISTANT_FILE: str(self.definition.path) if self.definition and self.definition.path else None,
            Env.SERVICE_NAME: "assistant",
            Env.METRICS_NAMESPACE: "ServerlessGptAssistant",
            Env.LOG_LEVEL: self.settings.handler_log_level,
        }
        needed = {name for function in FUNCTIONS for name in function.env}
        missing = needed - values.keys()
        if missing:
            raise RuntimeError(f"the local stack has no value for {sorted(m.value for m in missing)}; add one here")
        return values

    @staticmethod
    def _union_env(values: dict[Env, str | None], resources: Resources) -> dict[str, str]:
        """Thread isolation: the union of every function's environment, for all handlers in this process."""
        needed = {name for function in FUNCTIONS for name in function.env}
        env = {name.value: value for name, value in values.items() if name in needed and value is not None}
        env |= {
            "AWS_ENDPOINT_URL": resources.endpoint,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # Every handler shares this process's stdout, the console; there is no CloudWatch to read EMF locally.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        return env

    def _set_env(self, env: dict[str, str]) -> None:
        for name in (*env, *_REAL_AWS_ENV, Env.OPENAI_BASE_URL.value):
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in _REAL_AWS_ENV:
            os.environ.pop(name, None)
        os.environ.pop(Env.OPENAI_BASE_URL.value, None)
        os.environ.update(env)
        # Handlers cache their clients per "container"; this stack is a new one.
        from assistant import runtime

        runtime.reset()

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    async def stop(self) -> None:
        """Stop in dependency order: nothing new arrives, running work drains, then the services go away."""
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.definition is not None:
            await asyncio.to_thread(self.definition.stop)
            self.definition = None
        if self.offline_model is not None:
            await self.offline_model.close()
            self.offline_model = None
        if self.runtime is not None:
            await asyncio.to_thread(self.runtime.close)
            self.runtime = None
        if self.moto is not None:
            await asyncio.to_thread(self.moto.stop)
            self.moto = None
        self._restore_env()
        if self.settings.stack_json is not None and self.info is not None:
            self.settings.stack_json.unlink(missing_ok=True)
        self.info = None

    # --- sync API (pytest fixtures, scripts) ---

    def __enter__(self) -> StackInfo:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="local-stack", daemon=True)
        self._thread.start()
        try:
            return self.run(self.start())
        except BaseException:
            self._close_loop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.run(self.stop())
        finally:
            self._close_loop()

    def run(self, coroutine: Any, timeout: float = 120.0) -> Any:
        """Run a coroutine on the stack's loop from another thread (the sync API's loop)."""
        if self._loop is None:
            raise RuntimeError("the stack runs on the caller's loop; await instead")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def _close_loop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        self._thread = None


#: Limits ``make dev`` applies: the ``dev`` stage's defaults, each overridable by the variable of the same name in the
#: environment ``make dev`` runs in (documented in docs/protocol.md, "Limits per user").
LOCAL_LIMIT_DEFAULTS: dict[Env, str] = {
    Env.MAX_MESSAGE_CHARS: str(DEFAULT_MAX_MESSAGE_CHARS),
    Env.DAILY_MESSAGE_QUOTA: str(STAGE_DEFAULTS.daily_message_quota),
    Env.DAILY_OUTPUT_TOKEN_QUOTA: str(STAGE_DEFAULTS.daily_output_token_quota),
    Env.DAILY_INPUT_TOKEN_QUOTA: str(STAGE_DEFAULTS.daily_input_token_quota),
    Env.RATE_LIMIT_SEND_MESSAGE: STAGE_DEFAULTS.rate_limit_send_message,
    Env.RATE_LIMIT_NEW_CONVERSATION: STAGE_DEFAULTS.rate_limit_new_conversation,
    Env.RATE_LIMIT_GET_HISTORY: STAGE_DEFAULTS.rate_limit_get_history,
    Env.RATE_LIMIT_LIST_CONVERSATIONS: STAGE_DEFAULTS.rate_limit_list_conversations,
    Env.MAX_CONNECTIONS_PER_USER: str(STAGE_DEFAULTS.max_connections_per_user),
    Env.MAX_WAITING_MESSAGES: str(STAGE_DEFAULTS.max_waiting_messages),
    Env.MAX_CONVERSATIONS_PER_USER: str(STAGE_DEFAULTS.max_conversations_per_user),
    Env.FLUSH_INTERVAL_MS: str(STAGE_DEFAULTS.flush_interval_ms),
    Env.FLUSH_MAX_INTERVAL_MS: str(STAGE_DEFAULTS.flush_max_interval_ms),
    Env.FLUSH_CHARS: str(STAGE_DEFAULTS.flush_chars),
}


def limits_from_environment(environ: Mapping[str, str] | None = None) -> dict[Env, str]:
    """The local limits, with the developer's overrides; a bad value fails the start with the variable's name."""
    env = os.environ if environ is None else environ
    values = {name: env.get(name.value) or default for name, default in LOCAL_LIMIT_DEFAULTS.items()}
    Settings.from_env({name.value: value for name, value in values.items()})  # raises MissingSetting, naming it
    return values


def _write_private(path: Path, text: str) -> None:
    """The file holds the demo password: readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _offline_profile_from_environment() -> Profile:
    value = os.environ.get("OFFLINE_MODEL_PROFILE") or "openai"
    for profile in PROFILES:
        if value == profile:
            return profile
    raise ValueError(f"OFFLINE_MODEL_PROFILE must be one of {', '.join(PROFILES)}, got {value!r}")
