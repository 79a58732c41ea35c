"""Records every AWS API call a function makes, for the least-privilege proof (tests/infra/test_least_privilege.py).

moto allows every call, so nothing else checks that a function's IAM grants cover what its code does. This module
registers a botocore ``before-parameter-build`` hook on every client created after :func:`install` (the hook sees the
operation's own parameters, before serialization) and appends one JSON line per distinct call to
``<record dir>/calls-<pid>.jsonl``: the function, the service and operation, the resources (table and index, each
transaction item, queue URL, secret id, the management API's endpoint and connection) and, for each resource, the
names of the function's environment variables whose value it is. That last part is what lets the proof map a local
resource (moto's table, the local gateway's callback URL) to the template's resource: the template wires the same
variable to a ``Ref`` or ``Fn::Join`` of it.

Which function made a call: in a local-stack container the handler it runs (one function per process); in a process
that calls handlers itself (the integration tests, thread isolation) the handler that :func:`attributed` wrapped and
that is running on this thread or task (a context variable). A call no handler made (test setup, the stack's
provisioning and its SQS poller, which plays Lambda's event source mapping) is not recorded.

The local stack turns it on in a container only when the harness passes :data:`RECORD_DIR_ENV` (never under
``make dev`` by default). This module imports only the standard library until :func:`install` runs: a container
imports it before it enters its function's environment.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The directory records go to; the harness sets it, a container removes it from its function's environment.
RECORD_DIR_ENV = "ASSISTANT_AWS_CALL_RECORD_DIR"
#: The function whose handler runs on this thread (or task), in a process that calls several handlers itself.
_current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("aws_call_function", default=None)

_state: dict[str, Any] = {"dir": None, "enabled": False, "function": None}
_seen: set[str] = set()
_lock = threading.Lock()


def install(record_dir: str | Path, *, function: str | None = None) -> None:
    """Record from now on into ``record_dir``; ``function`` (``module.handler``) if this process runs one function."""
    import botocore.session

    _state.update(dir=str(record_dir), enabled=True, function=function)
    if getattr(botocore.session.Session.create_client, "_records_aws_calls", False):
        return
    original: Callable[..., Any] = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        endpoint = str(client.meta.endpoint_url)
        client.meta.events.register(
            "before-parameter-build",
            lambda params, model, **_: _record(model, params, endpoint),
            unique_id="assistant-aws-call-recorder",
        )
        return client

    create_client._records_aws_calls = True  # type: ignore[attr-defined]
    botocore.session.Session.create_client = create_client


def set_enabled(enabled: bool) -> None:
    """Pause or resume recording in this process (the test session records only its integration and e2e tests)."""
    _state["enabled"] = enabled


def attributed(function: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` that marks the calls it makes (on its thread, and in tasks it starts) as ``function``'s."""
    if getattr(handler, "_records_aws_calls_as", None) == function:
        return handler

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        token = _current_function.set(function)
        try:
            return handler(event, context)
        finally:
            _current_function.reset(token)

    invoke._records_aws_calls_as = function  # type: ignore[attr-defined]
    return invoke


def _calling_function() -> str | None:
    return _state["function"] or _current_function.get()


def _env_names(value: Any) -> list[str]:
    """The environment variables whose value is ``value`` (a URL also without its trailing slash)."""
    if not isinstance(value, str) or not value:
        return []
    wanted = {value, value.rstrip("/")}
    return sorted(name for name, current in os.environ.items() if current in wanted or current.rstrip("/") in wanted)


def _resources(service: str, operation: str, params: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """What the call touches, as IAM needs it; every name comes with the variables that hold it."""
    found: dict[str, Any] = {}
    if service == "dynamodb":
        items: list[dict[str, Any]] = []
        if "TransactItems" in params:
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                items.append({"kind": kind, "table": body.get("TableName")})
        for table in params.get("RequestItems", {}):  # BatchGetItem, BatchWriteItem
            items.append({"kind": operation, "table": table})
        if "TableName" in params:
            items.append({"kind": operation, "table": params["TableName"], "index": params.get("IndexName")})
        for item in items:
            item["env"] = _env_names(item["table"])
        found["items"] = items
    elif service == "sqs":
        found["queue"] = {"url": params.get("QueueUrl"), "env": _env_names(params.get("QueueUrl"))}
    elif service == "s3":
        # The key only as its first segment (the prefix IAM grants on): every object under it has the same ARN shape.
        key = str(params.get("Key") or "")
        prefix = key.split("/", 1)[0] + "/" if "/" in key else ""
        found["object"] = {
            "bucket": params.get("Bucket"),
            "key": f"{prefix}{{key}}",
            "env": _env_names(params.get("Bucket")),
        }
    elif service == "secretsmanager":
        found["secret"] = {"id": params.get("SecretId"), "env": _env_names(params.get("SecretId"))}
    elif service == "apigatewaymanagementapi":
        # The connection id only as a placeholder: every connection's ARN has the same shape.
        connection = "{connectionId}" if params.get("ConnectionId") else None
        found["api"] = {"endpoint": endpoint, "env": _env_names(endpoint), "connection": connection}
    else:
        found["params"] = sorted(params)
    return found


def _record(model: Any, params: dict[str, Any], endpoint: str) -> None:
    if not _state["enabled"] or not _state["dir"]:
        return
    function = _calling_function()
    if function is None:
        return
    service = model.service_model.service_name
    try:
        resources = _resources(service, model.name, params, endpoint)
    except Exception as error:  # a record that cannot be read is itself recorded, never a failed call
        resources = {"unreadable": repr(error)}
    line = json.dumps(
        {"function": function, "service": service, "operation": model.name, "resources": resources}, sort_keys=True
    )
    with _lock:
        if line in _seen:
            return
        _seen.add(line)
        directory = Path(_state["dir"])
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"calls-{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
            out.write(line + "\n")
