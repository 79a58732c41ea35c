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
from pathlib import Path
from types import TracebackType
from typing import Any

from assistant.wiring import FUNCTIONS, QUEUE, WORKER, Env, ModelProvider, function_environment
from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS, REGION, MotoServer, client
from scripts.local_stack.aws.resources import Resources, provision
from scripts.local_stack.event_source.sqs_poller import QueuePoller
from scripts.local_stack.gateway.server import Gateway
from scripts.local_stack.lambda_runtime.invocation import import_handler, reset_handler_modules
from scripts.local_stack.lambda_runtime.processes import ProcessLambdaRuntime
from scripts.local_stack.lambda_runtime.threads import LambdaRuntime
from scripts.local_stack.local_definition import LocalDefinition
from scripts.local_stack.offline_model import RunningOfflineModel, start_async
from scripts.local_stack.settings import LocalStackSettings, StackInfo

__all__ = ["LocalStack", "LocalStackSettings", "StackInfo"]

log = logging.getLogger("local_stack")

#: Environment variables that must not leak into the handlers: they would point boto3 at a real account.
_REAL_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


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
            throttles=settings.throttles,
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
            table_name=resources.table_name,
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
        """Cognito's answer to the demo user's sign-in (for the page's one-click sign-in): ADMIN_USER_PASSWORD_AUTH,
        an admin call with moto's credentials, which the local client allows for this alone (the page signs in with
        SRP, and the deployed client allows no password flow)."""
        resources = self.resources
        if resources is None:
            raise RuntimeError("the stack is still starting")
        cognito = client("cognito-idp", resources.endpoint)
        answer = await asyncio.to_thread(
            cognito.admin_initiate_auth,
            UserPoolId=resources.user_pool_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
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
        """The local value of every variable a function may declare (``None``: left unset, as deployed). Each
        function's environment is built from these by ``assistant.wiring.function_environment``, as the CDK stack
        builds it, which refuses a declared variable missing here."""
        values: dict[Env, str | None] = {
            Env.TABLE_NAME: resources.table_name,
            Env.QUEUE_URL: resources.queue_url,
            Env.CALLBACK_URL: callback_url,
            Env.USER_POOL_ID: resources.user_pool_id,
            Env.USER_POOL_CLIENT_ID: resources.user_pool_client_id,
            Env.COGNITO_ISSUER: resources.cognito_issuer,
            Env.COGNITO_JWKS_URL: resources.jwks_url,
            Env.OPENAI_SECRET_NAME: resources.secret_name,
            Env.UPLOAD_BUCKET_NAME: resources.upload_bucket,
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
        return values

    @staticmethod
    def _union_env(values: dict[Env, str | None], resources: Resources) -> dict[str, str]:
        """Thread isolation: the union of every function's environment, for all handlers in this process."""
        env: dict[str, str] = {}
        for function in FUNCTIONS:
            env |= function_environment(function, values)
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
        # Handlers keep their clients per "container"; this stack is a new one.
        reset_handler_modules(FUNCTIONS)

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


def _write_private(path: Path, text: str) -> None:
    """The file holds the demo password: readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
