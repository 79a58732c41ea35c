"""One Lambda execution environment of the local stack: a child process that runs one function's handler.

:class:`.processes.ProcessLambdaRuntime` starts it (multiprocessing's fork server, or ``spawn``) and talks to it over
a pipe. Before anything of the function is imported, the process takes on what a deployed function has and nothing
else: exactly the environment the parent computed for it (the variables its ``FunctionSpec.env`` declares, the ones
the Lambda runtime sets, the SDK's endpoint pointing at moto), ``sys.path`` = task root, layer and the Python
runtime, and stdout/stderr going to the function's log file (CloudWatch Logs, locally). So a variable the wiring
forgot fails here as it would in AWS, and Powertools' metrics are flushed as EMF lines into that file.

It then imports the handler (the init phase: a broken module fails here, reported as ``init_error``) and answers
one invocation at a time, like a Lambda container. Events and results cross the pipe as JSON text, as they cross
the Lambda runtime API, so a handler returning something JSON cannot carry fails here too.

This module is what the child imports first: it keeps to the standard library.
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import resource
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from scripts.local_stack.lambda_runtime import aws_calls


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


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a container needs, picklable: the parent builds it, the child applies it."""

    #: The deployed name (``<stage>-<function>``), as in ``AWS_LAMBDA_FUNCTION_NAME``.
    function_name: str
    #: ``module.function``, importable from ``python_path``.
    handler: str
    memory_mb: int
    timeout_seconds: int
    invoked_function_arn: str
    #: The whole environment of the process; nothing of the parent's is kept.
    environment: dict[str, str]
    #: Task root first, then the layer, as Lambda's Python runtime orders them; the interpreter's own paths follow.
    python_path: tuple[str, ...]
    #: Where stdout and stderr go (the function's log stream).
    log_path: str


# Messages on the pipe, child to parent: (kind, payload).
READY = "ready"
INIT_ERROR = "init_error"
RESULT = "result"
ERROR = "error"


def main(connection: Connection, spec: ContainerSpec) -> None:
    """The child's entry point: enter the function's environment, import the handler, serve invocations."""
    _enter_environment(spec)
    # The harness's switch, not a variable of the function: taken out of its environment before the handler loads.
    record_dir = os.environ.pop(aws_calls.RECORD_DIR_ENV, None)
    if record_dir:
        aws_calls.install(record_dir, function=spec.handler)
    try:
        handler = _import_handler(spec.handler)
    except BaseException as exc:  # any failure of the init phase is reported, as Lambda does
        error = _error_payload(exc)
        if isinstance(exc, ImportError):
            error["errorType"] = "Runtime.ImportModuleError"
            error["errorMessage"] = f"Unable to import module {spec.handler.rpartition('.')[0]!r}: {exc}"
        _log_error(error)
        connection.send((INIT_ERROR, error))
        return
    connection.send((READY, None))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if request is None:
            return
        request_id, event_json = request
        connection.send(_invoke(handler, spec, request_id, event_json))


def _enter_environment(spec: ContainerSpec) -> None:
    os.environ.clear()
    os.environ.update(spec.environment)
    if hasattr(time, "tzset"):
        time.tzset()  # TZ=:UTC, as in Lambda
    runtime_paths = [path for path in sys.path if _is_runtime_path(path)]
    sys.path[:] = [*spec.python_path, *runtime_paths]
    log_path = Path(spec.log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    # Line by line, so the log file is complete when the parent gets the result (Lambda's stdout is unbuffered).
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    print(f"INIT_START Function: {spec.function_name} Handler: {spec.handler} Pid: {os.getpid()}", flush=True)


def _is_runtime_path(path: str) -> bool:
    """The interpreter's standard library and the installed packages (the runtime and the bundled dependencies)."""
    if not path:
        return False
    resolved = os.path.realpath(path)
    prefixes = {os.path.realpath(prefix) for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(resolved == prefix or resolved.startswith(prefix + os.sep) for prefix in prefixes)


def _import_handler(handler: str) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name)
    function = getattr(module, attribute)
    if not callable(function):
        raise TypeError(f"{handler} is not callable")
    return function


def _invoke(handler: Any, spec: ContainerSpec, request_id: str, event_json: str) -> tuple[str, Any]:
    context = FakeLambdaContext(
        function_name=spec.function_name,
        memory_limit_in_mb=spec.memory_mb,
        invoked_function_arn=spec.invoked_function_arn,
        timeout_seconds=spec.timeout_seconds,
        aws_request_id=request_id,
        log_stream_name=f"local/{os.getpid()}",
    )
    print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
    started = time.perf_counter()
    outcome: tuple[str, Any]
    try:
        result = handler(json.loads(event_json), context)
    except Exception as exc:  # the caller gets it, as Lambda's Invoke returns a function error
        error = _error_payload(exc)
        _log_error(error)
        outcome = (ERROR, error)
    else:
        try:
            outcome = (RESULT, json.dumps(result, default=_decimal_as_number))
        except (TypeError, ValueError) as exc:
            error = {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {exc}"}
            _log_error(error)
            outcome = (ERROR, error)
    duration_ms = (time.perf_counter() - started) * 1000
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"END RequestId: {request_id}", flush=True)
    print(
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tMemory Size: {spec.memory_mb} MB\t"
        f"Max Memory Used: {_max_rss_mb()} MB",
        flush=True,
    )
    return outcome


def _decimal_as_number(value: Any) -> Any:
    """What ``awslambdaric`` does with a ``Decimal`` in a result (DynamoDB numbers); anything else fails."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error_payload(exc: BaseException) -> dict[str, Any]:
    """What Lambda's Invoke returns for a function error."""
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _log_error(error: dict[str, Any]) -> None:
    print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
    for line in error.get("stackTrace", []):
        print(line, end="", file=sys.stderr)
    sys.stderr.flush()


def _max_rss_mb() -> int:
    # Linux keeps ru_maxrss across exec, so a spawned child would report its parent's peak: read this process's own.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // (1024 * 1024) if sys.platform == "darwin" else peak // 1024  # bytes on macOS, KiB elsewhere
