"""Thread isolation: every handler on a thread pool of this process (see the package doc for what it cannot catch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from assistant.wiring import FunctionSpec
from scripts.local_stack.lambda_runtime.invocation import (
    Handler,
    HandlerResolver,
    LambdaTimeout,
    context_for,
    import_handler,
)

log = logging.getLogger("local_stack.lambda")


class LambdaRuntime:
    """Thread isolation: runs handlers on a thread pool of this process with a Lambda-like context.

    For callers that must share the handlers' process: a ``resolver`` returning closures (unit tests of the gateway
    and the poller) or tests that replace a handler module's ``dependencies`` while the stack runs. The handlers read
    whatever ``os.environ`` holds (the stack sets the union of all functions' variables, metrics off), so a variable
    missing from one function's spec, or a metrics flush that would fail, goes unnoticed here:
    ``ProcessLambdaRuntime`` catches those.
    """

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
