"""Invoking the handlers in ``lambdas/`` the way Lambda does: in containers of their own, or inside this process.

Two invokers, chosen by ``LocalStackSettings.isolation``:

``ProcessLambdaRuntime`` ("process", the default of ``make dev``)
    Each function runs in worker processes of its own (its "containers", see :mod:`.lambda_container`), started
    with exactly the environment the deployed function has: the variables its ``FunctionSpec.env`` declares, what
    the Lambda runtime sets, and the SDK's endpoint pointing at moto. Powertools' metrics are on and flushed as EMF
    into the function's log file, as in Lambda. So a variable the wiring forgot, or a metrics flush that cannot work
    with the function's own environment, fails here as it fails in AWS. A container runs one invocation at a time;
    a timed-out or crashed one is killed and replaced on the next invocation, as Lambda replaces a sandbox.

``LambdaRuntime`` ("thread")
    Every handler runs on a thread pool of this process, under the union of all functions' environments that the
    stack sets in ``os.environ``, with metrics disabled. It exists because tests reach into the handlers' process:
    unit tests of the gateway and the poller inject fake handlers (closures a child process cannot receive), and
    fault-injection tests patch ``assistant.runtime`` or reset its caches while the stack runs. What it cannot
    catch: a function reading a variable only another function declares, a metrics flush that fails for lack of a
    namespace, module state shared between functions, a result that is not JSON. A handler that overruns its timeout
    keeps running (Python cannot kill a thread); the caller sees the error Lambda would give, and the overrun is
    logged.

Both give every invocation a context shaped like Lambda's and cut it off (for the caller) at the function's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

from assistant.wiring import Env, FunctionSpec
from scripts.local_stack import lambda_container
from scripts.local_stack.lambda_container import ContainerSpec, FakeLambdaContext

__all__ = [
    "ACCOUNT_ID",
    "REPO_ROOT",
    "FakeLambdaContext",
    "FunctionError",
    "Handler",
    "HandlerResolver",
    "Invoker",
    "Isolation",
    "LambdaRuntime",
    "LambdaTimeout",
    "ProcessLambdaRuntime",
    "context_for",
    "import_handler",
]

log = logging.getLogger("local_stack.lambda")

#: Handlers take the event and a context, like Lambda's Python runtime.
Handler = Callable[[dict[str, Any], Any], Any]
#: Finds the callable for a function; injectable so tests can run the gateway and poller without ``lambdas/``.
HandlerResolver = Callable[[FunctionSpec], Handler]

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"
#: "process": each function in containers of its own (as deployed); "thread": all in this process (see above).
Isolation = Literal["process", "thread"]


class LambdaTimeout(Exception):
    """The handler ran past ``FunctionSpec.timeout_seconds``; Lambda would have ended it here."""


def context_for(function: FunctionSpec, *, stage: str, region: str) -> FakeLambdaContext:
    name = f"{stage}-{function.name}"
    return FakeLambdaContext(
        function_name=name,
        memory_limit_in_mb=function.memory_mb,
        invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
        timeout_seconds=function.timeout_seconds,
    )


HANDLERS_DIR = REPO_ROOT / "lambdas"


def import_handler(function: FunctionSpec) -> Handler:
    """Resolve ``FunctionSpec.handler`` ("module.function") from ``lambdas/``, like the Lambda runtime does.

    The module is loaded from its file under its own name (``worker``, ...), as Lambda loads it from the task root;
    ``assistant`` comes from the installed package (``pip install -e .``), so nothing edits ``sys.path``.
    """
    module_name, _, attribute = function.handler.rpartition(".")
    module = sys.modules.get(module_name) or _load_handler_module(module_name)
    handler = getattr(module, attribute)
    if not callable(handler):
        raise TypeError(f"{function.handler} is not callable")
    return handler


def _load_handler_module(module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, HANDLERS_DIR / f"{module_name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no handler module {module_name!r} in {HANDLERS_DIR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


class Invoker(Protocol):
    """What the gateway and the poller need: run a function with an event, get its result or its exception."""

    async def invoke(self, function: FunctionSpec, event: dict[str, Any]) -> Any: ...


class LambdaRuntime:
    """Thread isolation: runs handlers on a thread pool of this process with a Lambda-like context.

    For callers that must share the handlers' process: a ``resolver`` returning closures (unit tests of the gateway
    and the poller) or tests that patch ``assistant.runtime`` while the stack runs. The handlers read whatever
    ``os.environ`` holds (the stack sets the union of all functions' variables, metrics off), so a variable missing
    from one function's spec, or a metrics flush that would fail, goes unnoticed here: ``ProcessLambdaRuntime``
    catches those.
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


class FunctionError(Exception):
    """The function failed in its container; carries what Lambda's Invoke reports for a function error.

    ``str()`` is the ``errorMessage``, so an authorizer failing with exactly "Unauthorized" still means 401 to the
    gateway, as it does to API Gateway.
    """

    def __init__(self, function_name: str, error: Mapping[str, Any]) -> None:
        super().__init__(str(error.get("errorMessage", "")))
        self.function_name = function_name
        self.error_type = str(error.get("errorType", "Unknown"))
        self.stack_trace = "".join(error.get("stackTrace", []))

    def __repr__(self) -> str:
        return f"FunctionError({self.function_name!r}, {self.error_type}: {self})"


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


class _Container:
    """One execution environment: a child process serving one invocation at a time over a pipe."""

    def __init__(self, context: Any, spec: ContainerSpec) -> None:
        self.spec = spec
        ours, theirs = context.Pipe()
        self._connection: Connection = ours
        self._process: BaseProcess = context.Process(
            target=lambda_container.main, args=(theirs, spec), name=f"lambda:{spec.function_name}", daemon=True
        )
        self._process.start()
        # Only the child holds its end now, so its death reads as end-of-file here.
        theirs.close()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exit_code(self) -> int | None:
        return self._process.exitcode

    def wait_ready(self, timeout: float) -> None:
        """The init phase: the child imports the handler; raises :class:`FunctionError` if that fails."""
        try:
            kind, payload = self.receive(timeout)
        except TimeoutError:
            error = {"errorType": "Runtime.InitTimeout", "errorMessage": f"init took over {timeout:.0f} s"}
            raise FunctionError(self.spec.function_name, error) from None
        except (EOFError, OSError):
            self._process.join(timeout=5)
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"init exited with code {self.exit_code}"}
            raise FunctionError(self.spec.function_name, error) from None
        if kind != lambda_container.READY:
            raise FunctionError(self.spec.function_name, payload)

    def send(self, message: Any) -> None:
        self._connection.send(message)

    def receive(self, timeout: float) -> tuple[str, Any]:
        """The child's next message; ``TimeoutError`` if none in time, ``EOFError`` if the child is gone."""
        if not self._connection.poll(timeout):
            raise TimeoutError
        kind, payload = self._connection.recv()
        return str(kind), payload

    def terminate(self) -> None:
        """Kill the process; safe while another thread waits on the pipe (it then reads end-of-file)."""
        if self._process.is_alive():
            self._process.kill()

    def discard(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe. Only the thread that owns it calls this."""
        self.terminate()
        self._process.join(timeout=5)
        self._connection.close()

    def stop(self) -> None:
        """Ask an idle container to exit, as Lambda shuts a sandbox down; kill it if it does not."""
        with contextlib.suppress(OSError):
            self._connection.send(None)
        self._process.join(timeout=2)
        self.discard()


class _ContainerPool:
    """The containers of one function: reused while warm, started on demand up to ``size`` at once."""

    def __init__(self, start: Callable[[], _Container], size: int) -> None:
        self._start = start
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Container] = []
        self._busy: set[_Container] = set()
        self._closed = False

    def acquire(self) -> _Container:
        """A warm container, or a new one (its init is paid here, like a cold start); waits while all are busy."""
        self._slots.acquire()
        try:
            with self._lock:
                self._raise_if_closed()
                while self._idle:
                    container = self._idle.pop()
                    if container.alive:
                        self._busy.add(container)
                        return container
                    container.discard()
            container = self._start()
            with self._lock:
                if self._closed:
                    container.discard()
                    self._raise_if_closed()
                self._busy.add(container)
            return container
        except BaseException:
            self._slots.release()
            raise

    def release(self, container: _Container, *, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(container)
            keep = reusable and not self._closed and container.alive
            if keep:
                self._idle.append(container)
        if not keep:
            container.discard()
        self._slots.release()

    def prewarm(self) -> None:
        self.release(self.acquire(), reusable=True)

    def close(self, grace_s: float) -> None:
        """Stop idle containers; give busy ones ``grace_s`` to finish, then kill them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for container in idle:
            container.stop()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    return
            time.sleep(0.05)
        with self._lock:
            busy = list(self._busy)
        for container in busy:
            container.terminate()  # its invocation's thread reads end-of-file, reaps it and releases the slot

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError("the local Lambda runtime is closed")


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
        self._pools: dict[str, _ContainerPool] = {}
        self._pools_lock = threading.Lock()
        # One thread per invocation in flight: it waits on its container's pipe, so the event loop never blocks.
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda-invoke")

    def log_path(self, function: FunctionSpec) -> Path:
        return self._log_dir / f"{function.name}.log"

    def environment_for(self, function: FunctionSpec) -> dict[str, str]:
        """The whole environment of the function's containers: nothing of this process's own is passed on."""
        values = self._values() if callable(self._values) else self._values
        missing = [name.value for name in function.env if name not in values]
        if missing:
            raise RuntimeError(f"the local stack has no value for {missing} ({function.name}); add one")
        declared = {name.value: value for name in function.env if (value := values[name]) is not None}
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

    def _pool(self, function: FunctionSpec) -> _ContainerPool:
        with self._pools_lock:
            pool = self._pools.get(function.name)
            if pool is None:
                spec = self.container_spec(function)
                size = self._max_containers.get(function.name, self._default_max_containers)
                pool = self._pools[function.name] = _ContainerPool(lambda: self._start(spec), size)
            return pool

    def _start(self, spec: ContainerSpec) -> _Container:
        container = _Container(self._context, spec)
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
        if kind == lambda_container.ERROR:
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
        Env.DAILY_INPUT_TOKEN_QUOTA,
        Env.FLUSH_INTERVAL_MS,
        Env.FLUSH_MAX_INTERVAL_MS,
        Env.FLUSH_CHARS,
        Env.MAX_RECEIVE_COUNT,
        Env.MAX_CONNECTIONS_PER_USER,
        Env.MAX_WAITING_MESSAGES,
        Env.MAX_CONVERSATIONS_PER_USER,
    ):
        env[numeric.value] = "10"
    for limit in (
        Env.RATE_LIMIT_SEND_MESSAGE,
        Env.RATE_LIMIT_NEW_CONVERSATION,
        Env.RATE_LIMIT_GET_HISTORY,
        Env.RATE_LIMIT_LIST_CONVERSATIONS,
    ):
        env[limit.value] = "10/30"
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
