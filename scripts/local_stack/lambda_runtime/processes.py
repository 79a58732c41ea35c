"""Process isolation: each function in containers of its own, with exactly its deployed environment.

See the package doc for why this is the default of ``make dev``, and :mod:`.container_pool` and
:mod:`.execution_environment` for the two sides of a container.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from assistant.wiring import Env, FunctionSpec, function_environment
from scripts.local_stack.lambda_runtime import aws_calls, execution_environment
from scripts.local_stack.lambda_runtime.container_pool import Container, ContainerPool
from scripts.local_stack.lambda_runtime.execution_environment import ContainerSpec
from scripts.local_stack.lambda_runtime.invocation import REPO_ROOT, FunctionError, LambdaTimeout, context_for

log = logging.getLogger("local_stack.lambda")

#: How the containers are started. Never "fork": the parent runs threads (moto, the gateway's loop, invocations),
#: and a child forked mid-flight inherits their locks. The fork server is a fresh single-threaded process that forks
#: each container, which starts them faster than "spawn" (no new interpreter each); both pass nothing on but fds.
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
#: How long a container may take to start and import its handler (Lambda's init phase; generous for a busy machine).
INIT_TIMEOUT_S = 60.0
#: What stays in containers of route functions; the worker's pool is sized by the stack (the poller's concurrency).
DEFAULT_MAX_CONTAINERS = 4
#: The interpreter's own directory first, as Lambda's ``/var/lang/bin``; then the usual system directories.
_LAMBDA_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])


class ProcessLambdaRuntime:
    """Runs each function in containers of its own, with exactly its deployed environment; see the module doc.

    ``values`` has the local value of every variable a function may declare (``None``: unset, as a deployed stack
    leaves an optional one); a function gets only those its ``FunctionSpec.env`` names. It may be a callable, read
    when a function's first container starts: the stack knows the gateway's callback URL only once it listens.
    ``endpoint_url`` becomes ``AWS_ENDPOINT_URL``: how the harness points the SDK at moto, not a variable of the
    function. Each function writes its log stream (its handler's logs, the EMF metrics, START/END/REPORT lines) to
    ``log_dir/<function>.log``.
    """

    def __init__(
        self,
        values: Mapping[Env, str | None] | Callable[[], Mapping[Env, str | None]],
        *,
        endpoint_url: str | None,
        log_dir: Path,
        stage: str = "local",
        region: str = "us-east-1",
        task_root: Path = REPO_ROOT / "lambdas",
        layer_root: Path = REPO_ROOT / "shared",
        max_containers: Mapping[str, int] | None = None,
        default_max_containers: int = DEFAULT_MAX_CONTAINERS,
    ) -> None:
        self._values = values
        self._endpoint_url = endpoint_url
        self._log_dir = log_dir
        self._stage = stage
        self._region = region
        self._task_root = task_root
        self._layer_root = layer_root
        self._max_containers = dict(max_containers or {})
        self._default_max_containers = default_max_containers
        self._context = multiprocessing.get_context(START_METHOD)
        self._pools: dict[str, ContainerPool] = {}
        self._pools_lock = threading.Lock()
        # One thread per invocation in flight: it waits on its container's pipe, so the event loop never blocks.
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda-invoke")

    def log_path(self, function: FunctionSpec) -> Path:
        return self._log_dir / f"{function.name}.log"

    def environment_for(self, function: FunctionSpec) -> dict[str, str]:
        """The whole environment of the function's containers: nothing of this process's own is passed on."""
        values = self._values() if callable(self._values) else self._values
        # Built as the CDK stack builds it: exactly what the spec declares; a declared variable without a value fails.
        declared = function_environment(function, values)
        name = f"{self._stage}-{function.name}"
        runtime = {
            # What the Lambda runtime sets (reserved: a function's configuration cannot override them).
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "_HANDLER": function.handler,
            # The execution role's credentials in Lambda; fake ones here (moto accepts anything).
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "LAMBDA_TASK_ROOT": str(self._task_root),
            "PATH": _LAMBDA_PATH,
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # The task root and the layer, where Lambda's runtime puts /var/task and /opt/python.
            "PYTHONPATH": os.pathsep.join([str(self._task_root), str(self._layer_root)]),
        }
        harness = {
            # How the harness points boto3 at moto; no ~/.aws of this machine reaches the function.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        if self._endpoint_url:
            harness["AWS_ENDPOINT_URL"] = self._endpoint_url
        if record_dir := os.environ.get(aws_calls.RECORD_DIR_ENV):
            # The least-privilege proof records each function's AWS calls (see aws_calls).
            harness[aws_calls.RECORD_DIR_ENV] = record_dir
        return declared | harness | runtime

    def container_spec(self, function: FunctionSpec) -> ContainerSpec:
        context = context_for(function, stage=self._stage, region=self._region)
        return ContainerSpec(
            function_name=context.function_name,
            handler=function.handler,
            memory_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            invoked_function_arn=context.invoked_function_arn,
            environment=self.environment_for(function),
            python_path=(str(self._task_root), str(self._layer_root)),
            log_path=str(self.log_path(function)),
        )

    def preload(self, functions: Iterable[FunctionSpec]) -> None:
        """Start one container per function now (fresh log files), so a broken module or a missing variable that
        fails at import stops the start instead of the first request."""
        functions = tuple(functions)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for function in functions:
            self.log_path(function).unlink(missing_ok=True)
        warming = [self._executor.submit(self._pool(function).prewarm) for function in functions]
        errors = [error for future in warming if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    def _pool(self, function: FunctionSpec) -> ContainerPool:
        with self._pools_lock:
            pool = self._pools.get(function.name)
            if pool is None:
                spec = self.container_spec(function)
                size = self._max_containers.get(function.name, self._default_max_containers)
                pool = self._pools[function.name] = ContainerPool(lambda: self._start(spec), size)
            return pool

    def _start(self, spec: ContainerSpec) -> Container:
        container = Container(self._context, spec)
        try:
            container.wait_ready(INIT_TIMEOUT_S)
        except BaseException:
            container.discard()
            raise
        return container

    async def invoke(self, function: FunctionSpec, event: Mapping[str, Any]) -> Any:
        request_id = str(uuid.uuid4())
        event_json = json.dumps(event)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._invoke, function, request_id, event_json)
        # A caller that stops waiting (API Gateway's 29 s, a poller that stops) leaves the invocation running, as
        # in AWS; its outcome is still read, so asyncio reports no lost exception.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        name = f"{self._stage}-{function.name}"
        try:
            return await asyncio.shield(future)
        except LambdaTimeout:
            log.error(
                "%s timed out after %d s (request %s); its container was stopped, as Lambda does",
                name,
                function.timeout_seconds,
                request_id,
            )
            raise
        except FunctionError as exc:
            log.error(
                "%s failed (request %s): %s: %s (log: %s)\n%s",
                name,
                request_id,
                exc.error_type,
                exc,
                self.log_path(function),
                exc.stack_trace,
            )
            raise

    def _invoke(self, function: FunctionSpec, request_id: str, event_json: str) -> Any:
        """One invocation, on a thread: a container, the event in, the result (or the error) out."""
        name = f"{self._stage}-{function.name}"
        pool = self._pool(function)
        container = pool.acquire()
        reusable = False
        try:
            container.send((request_id, event_json))
            try:
                kind, payload = container.receive(function.timeout_seconds)
            except TimeoutError:
                raise LambdaTimeout(f"{name} timed out after {function.timeout_seconds} s") from None
            except (EOFError, OSError):
                container.discard()
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with {_exit(container.exit_code)}",
                }
                self._append_to_log(function, f"{error['errorMessage']}\n{error['errorType']}\n")
                raise FunctionError(name, error) from None
            reusable = True
        finally:
            pool.release(container, reusable=reusable)
        if kind == execution_environment.ERROR:
            raise FunctionError(name, payload)
        return json.loads(payload)

    def _append_to_log(self, function: FunctionSpec, text: str) -> None:
        """What Lambda's service (not the function) writes to the log stream, e.g. that the runtime died."""
        with self.log_path(function).open("a", encoding="utf-8") as stream:
            stream.write(text)

    def close(self, grace_s: float = 5.0) -> None:
        """Stop every container (busy ones get ``grace_s`` to finish) and the threads waiting on them."""
        with self._pools_lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close(grace_s)
        self._executor.shutdown(wait=True, cancel_futures=True)


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit status {code}"
