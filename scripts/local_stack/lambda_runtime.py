"""Invoking the handlers in ``lambdas/`` the way Lambda does, inside this process.

Every invocation runs on a thread pool so a slow worker never blocks the gateway's event loop, gets a fresh
context object shaped like Lambda's, and is cut off (for the caller) at the function's timeout. Python cannot kill
a thread, so a handler that overruns keeps running in the background; the caller sees the same error it would see
from Lambda, and the overrun is logged.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from assistant.wiring import Env, FunctionSpec

log = logging.getLogger("local_stack.lambda")

#: Handlers take the event and a context, like Lambda's Python runtime.
Handler = Callable[[dict[str, Any], Any], Any]
#: Finds the callable for a function; injectable so tests can run the gateway and poller without ``lambdas/``.
HandlerResolver = Callable[[FunctionSpec], Handler]

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"


class LambdaTimeout(Exception):
    """The handler ran past ``FunctionSpec.timeout_seconds``; Lambda would have ended it here."""


@dataclass
class FakeLambdaContext:
    """The attributes of ``awslambdaric``'s ``LambdaContext`` that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def context_for(function: FunctionSpec, *, stage: str, region: str) -> FakeLambdaContext:
    name = f"{stage}-{function.name}"
    return FakeLambdaContext(
        function_name=name,
        memory_limit_in_mb=function.memory_mb,
        invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
        timeout_seconds=function.timeout_seconds,
    )


def ensure_handler_paths(root: Path = REPO_ROOT) -> None:
    """Put ``shared/`` (the layer) and ``lambdas/`` (the code) on ``sys.path``, as Lambda's runtime has them."""
    for folder in (root / "shared", root / "lambdas"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def import_handler(function: FunctionSpec) -> Handler:
    """Resolve ``FunctionSpec.handler`` ("module.function") from ``lambdas/``, like the Lambda runtime does."""
    ensure_handler_paths()
    module_name, _, attribute = function.handler.rpartition(".")
    module = importlib.import_module(module_name)
    handler = getattr(module, attribute)
    if not callable(handler):
        raise TypeError(f"{function.handler} is not callable")
    return handler


class Invoker(Protocol):
    """What the gateway and the poller need: run a function with an event, get its result or its exception."""

    async def invoke(self, function: FunctionSpec, event: dict[str, Any]) -> Any: ...


class LambdaRuntime:
    """Runs handlers on a thread pool with a Lambda-like context; one instance per local stack."""

    def __init__(
        self,
        resolver: HandlerResolver = import_handler,
        *,
        stage: str = "local",
        region: str = "us-east-1",
        max_concurrency: int = 64,
    ) -> None:
        self._resolver = resolver
        self._stage = stage
        self._region = region
        self._handlers: dict[str, Handler] = {}
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda")

    def preload(self, functions: tuple[FunctionSpec, ...]) -> None:
        """Import every handler now, so a broken module fails the start instead of the first request."""
        for function in functions:
            self._handler(function)

    def _handler(self, function: FunctionSpec) -> Handler:
        handler = self._handlers.get(function.name)
        if handler is None:
            handler = self._handlers[function.name] = self._resolver(function)
        return handler

    async def invoke(self, function: FunctionSpec, event: Mapping[str, Any]) -> Any:
        handler = self._handler(function)
        context = context_for(function, stage=self._stage, region=self._region)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, handler, dict(event), context)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=function.timeout_seconds)
        except TimeoutError:
            log.error(
                "%s timed out after %d s (request %s); its thread runs on, Lambda would have stopped it",
                context.function_name,
                function.timeout_seconds,
                context.aws_request_id,
            )
            raise LambdaTimeout(f"{context.function_name} timed out after {function.timeout_seconds} s") from None
        except Exception:
            log.exception("%s failed (request %s)", context.function_name, context.aws_request_id)
            raise

    def close(self) -> None:
        """Wait for running handlers (they end quickly once moto and the gateway are gone) and drop queued ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def runtime_provided(into: Path) -> Path:
    """boto3, botocore and their dependencies, as the Lambda runtime provides them (symlinks into this venv)."""
    provided = into / "runtime-provided"
    provided.mkdir(parents=True, exist_ok=True)
    pending, seen = ["boto3"], set()
    while pending:
        dist = metadata.distribution(pending.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        top_level = (dist.read_text("top_level.txt") or "").split()
        files = dist.files or []
        names = set(top_level) or {str(f).split("/")[0] for f in files if not str(f).split("/")[0].endswith("-info")}
        for top in names:
            for candidate in (Path(str(dist.locate_file(top))), Path(str(dist.locate_file(f"{top}.py")))):
                if candidate.exists() and not (provided / candidate.name).exists():
                    (provided / candidate.name).symlink_to(candidate)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[;\s<>=!~\[]", requirement, maxsplit=1)[0])
    return provided


def handler_env() -> dict[str, str]:
    """What a deployed function's environment looks like, with placeholder values (nothing is called)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **{name.value: "placeholder" for name in Env},
        Env.CALLBACK_URL.value: "https://example.execute-api.us-east-1.amazonaws.com/dev",
        Env.QUEUE_URL.value: "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
        Env.LOG_LEVEL.value: "INFO",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for numeric in (
        Env.MAX_MESSAGE_CHARS,
        Env.DAILY_MESSAGE_QUOTA,
        Env.DAILY_OUTPUT_TOKEN_QUOTA,
        Env.FLUSH_INTERVAL_MS,
        Env.FLUSH_CHARS,
        Env.MAX_RECEIVE_COUNT,
    ):
        env[numeric.value] = "10"
    # Optional ones are unset in a deployed function unless a stage sets them.
    for optional in (
        Env.COGNITO_ISSUER,
        Env.COGNITO_JWKS_URL,
        Env.OPENAI_BASE_URL,
        Env.MODEL_OVERRIDE,
        Env.MODEL_READ_TIMEOUT_MS,
    ):
        env.pop(optional.value)
    return env
