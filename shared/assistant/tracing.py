"""X-Ray traces through Powertools' Tracer, paid for only by the invocations Lambda samples.

Lambda decides per invocation whether it is traced and says so in ``_X_AMZN_TRACE_ID`` (``Sampled=1``). Building
the Tracer imports the X-Ray SDK (more than the rest of the authorizer's own code: ``make bench``, "Cold start", the
``traced`` rows), so it is built on the first *sampled* invocation, not at import: an unsampled cold start pays
nothing, and outside Lambda (tests, the local stack, ``POWERTOOLS_TRACE_DISABLED``) nothing of the SDK is ever
imported. Once built, the Tracer patches
botocore, so every AWS call of the function (DynamoDB, SQS, ``@connections``, Secrets Manager) is a subsegment.

Where the code's own time goes is marked with :func:`subsegment` (a block) and :func:`mark_since` (a span that
ended now, e.g. the wait for the model's first token); both do nothing on an unsampled invocation.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])

#: What the Lambda runtime sets for each invocation of a function with active tracing.
TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"
#: Powertools' own switch; the local stack sets it.
TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
#: boto3's transport: patching it traces every AWS call, whichever client makes it.
_PATCHED_MODULES = ("botocore",)

_tracer: Tracer | None = None


def enabled() -> bool:
    """Whether this invocation is traced: in Lambda, not switched off, and sampled by Lambda."""
    if os.environ.get(TRACE_DISABLED_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if not os.environ.get("LAMBDA_TASK_ROOT") or os.environ.get("AWS_SAM_LOCAL"):
        return False
    return "Sampled=1" in os.environ.get(TRACE_HEADER_ENV, "")


def tracer() -> Tracer:
    """The function's Tracer, built on first use (this imports the X-Ray SDK and patches botocore)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        # Only what the function has already imported: the authorizer makes no AWS call and must not pay for
        # importing botocore just to patch it (every other handler imports boto3 with assistant.clients).
        # (An empty ``patch_modules`` would make Powertools patch everything it knows: hence ``auto_patch``.)
        # (``botocore.client``: Powertools itself imports the bare ``botocore`` package, which costs nothing.)
        modules = [module for module in _PATCHED_MODULES if f"{module}.client" in sys.modules]
        _tracer = Tracer(auto_patch=bool(modules), patch_modules=modules or None)
    return _tracer


def capture_handler(handler: Handler) -> Handler:
    """Trace a Lambda handler (Powertools' ``capture_lambda_handler``: cold start annotation, response, errors) on
    sampled invocations; call it directly on the others."""
    traced: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        nonlocal traced
        if not enabled():
            return handler(event, context)
        if traced is None:
            # Responses may carry user data (frames, history); errors are still recorded.
            traced = tracer().capture_lambda_handler(handler, capture_response=False)
        return traced(event, context)

    return wrapper  # type: ignore[return-value]


@contextmanager
def subsegment(name: str) -> Iterator[None]:
    """Time a block as its own subsegment of the invocation's trace (a no-op when the invocation is not traced)."""
    if not enabled():
        yield
        return
    with tracer().provider.in_subsegment(name):
        yield


def mark_since(name: str, started_at: float) -> None:
    """Record a subsegment that began at ``started_at`` (``time.time()``) and ends now: a wait that is not a block
    of code, such as a model request's time to first token. A no-op when the invocation is not traced."""
    if not enabled():
        return
    # The X-Ray recorder (Powertools types its provider as the base class, which has no begin/end).
    recorder: Any = tracer().provider
    entity = recorder.begin_subsegment(name)
    if entity is not None:
        entity.start_time = min(started_at, time.time())
    recorder.end_subsegment()


def reset() -> None:
    """Forget the Tracer (tests switch tracing on and off)."""
    global _tracer
    _tracer = None
