"""What an invocation is, whichever runtime runs it: the handler, its Lambda-like context, its errors, the invoker.

The gateway and the poller depend on :class:`Invoker` only; the two runtimes (:mod:`.threads`, :mod:`.processes`)
implement it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

from assistant.wiring import FunctionSpec
from scripts.local_stack.lambda_runtime.execution_environment import FakeLambdaContext

#: Handlers take the event and a context, like Lambda's Python runtime.
Handler = Callable[[dict[str, Any], Any], Any]
#: Finds the callable for a function; injectable so tests can run the gateway and poller without ``lambdas/``.
HandlerResolver = Callable[[FunctionSpec], Handler]

REPO_ROOT = Path(__file__).resolve().parents[3]
ACCOUNT_ID = "123456789012"
#: "process": each function in containers of its own (as deployed); "thread": all in this process (see the package doc).
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


def reset_handler_modules(functions: Iterable[FunctionSpec]) -> None:
    """A fresh "container" for the handler modules loaded in this process: each builds its dependencies again at its
    next invocation (``dependencies``, an ``assistant.lifecycle.PerContainer``), from the environment as it is then.

    For what runs handlers in this process (thread isolation, tests) after changing their environment or starting
    another stack. Powertools' parameters utility keeps fetched secrets and its client (bound to an endpoint) at
    module level, so it is cleared too.
    """
    from aws_lambda_powertools.utilities import parameters

    for function in functions:
        module = sys.modules.get(function.handler.rpartition(".")[0])
        dependencies = getattr(module, "dependencies", None)
        reset = getattr(dependencies, "reset", None)
        if callable(reset):
            reset()
    parameters.clear_caches()


class Invoker(Protocol):
    """What the gateway and the poller need: run a function with an event, get its result or its exception."""

    async def invoke(self, function: FunctionSpec, event: dict[str, Any]) -> Any: ...


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
