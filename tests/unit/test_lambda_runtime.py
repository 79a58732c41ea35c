"""The local stack's process isolation runs a function the way Lambda does, so it fails where a deployed one would.

The handlers here live in a task root of their own (a temporary directory), imported by the containers. Each
container costs a process start and Powertools' import (a few tenths of a second), so the functions share one
runtime and the tests stay few.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.wiring import Env, FunctionSpec
from scripts.local_stack.lambda_runtime.invocation import FunctionError, LambdaTimeout
from scripts.local_stack.lambda_runtime.processes import ProcessLambdaRuntime
from scripts.local_stack.stack import LocalStack, LocalStackSettings

HANDLERS = '''
"""Handlers for tests/unit/test_lambda_runtime.py."""

import os
import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
def counted(event, context):
    metrics.add_metric(name="Probes", unit=MetricUnit.Count, value=1)
    logger.info("probe ran")
    return {"environ": dict(os.environ), "remaining_ms": context.get_remaining_time_in_millis()}


def fails(event, context):
    raise Exception(event["message"])


def sleeps(event, context):
    time.sleep(event["seconds"])
    return {"slept": event["seconds"]}


def exits(event, context):
    os._exit(3)


def not_json(event, context):
    return {"at": object()}
'''

#: The stack's values; each function must get only those its spec declares.
VALUES: dict[Env, str | None] = {
    Env.SERVICE_NAME: "probe-service",
    Env.METRICS_NAMESPACE: "ProbeNamespace",
    Env.LOG_LEVEL: "INFO",
    Env.TABLE_NAME: "a-table-only-others-declare",
    Env.QUEUE_URL: "https://sqs.example/queue",
    Env.MODEL_OVERRIDE: None,
}


def spec(name: str, handler: str, *env: Env, timeout_seconds: int = 5) -> FunctionSpec:
    return FunctionSpec(
        name=name, handler=f"probes.{handler}", description=name, timeout_seconds=timeout_seconds, env=env
    )


COUNTED = spec("counted", "counted", Env.QUEUE_URL, Env.MODEL_OVERRIDE)
FAILS = spec("fails", "fails")
SLEEPS = spec("sleeps", "sleeps", timeout_seconds=1)
EXITS = spec("exits", "exits")
NOT_JSON = spec("not_json", "not_json")


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task-root")
    (root / "probes.py").write_text(HANDLERS, encoding="utf-8")
    (root / "broken.py").write_text("import a_module_nobody_installed\n", encoding="utf-8")
    return root


def make_runtime(task_root: Path, log_dir: Path, values: dict[Env, str | None]) -> ProcessLambdaRuntime:
    return ProcessLambdaRuntime(
        values, endpoint_url="http://127.0.0.1:9", log_dir=log_dir, task_root=task_root, default_max_containers=2
    )


@pytest.fixture(scope="module")
def runtime(task_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessLambdaRuntime]:
    # Set here, before the containers start: the parent's own variables must not reach them.
    os.environ["LEAKED_FROM_THE_PARENT"] = "1"
    runtime = make_runtime(task_root, tmp_path_factory.mktemp("logs"), VALUES)
    try:
        runtime.preload([COUNTED, FAILS, SLEEPS, EXITS, NOT_JSON])
        yield runtime
    finally:
        runtime.close()
        del os.environ["LEAKED_FROM_THE_PARENT"]


def emf_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith('{"_aws"')]


def test_the_environment_is_what_the_spec_declares_and_what_lambda_sets(task_root: Path, tmp_path: Path) -> None:
    environment = make_runtime(task_root, tmp_path, VALUES).environment_for(COUNTED)

    assert environment["QUEUE_URL"] == "https://sqs.example/queue"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "ProbeNamespace", "every spec gets Powertools' variables"
    assert "TABLE_NAME" not in environment, "declared by other functions only"
    assert "MODEL_OVERRIDE" not in environment, "declared but without a value: unset, as deployed"
    assert "POWERTOOLS_METRICS_DISABLED" not in environment
    assert environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "local-counted"
    assert environment["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/local-counted"
    assert environment["TZ"] == ":UTC"
    assert environment["LAMBDA_TASK_ROOT"] == str(task_root)
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(task_root)


def test_a_value_the_stack_lacks_fails_loudly(task_root: Path, tmp_path: Path) -> None:
    without_queue = {name: value for name, value in VALUES.items() if name != Env.QUEUE_URL}
    runtime = make_runtime(task_root, tmp_path, without_queue)
    with pytest.raises(RuntimeError, match="QUEUE_URL"):
        runtime.environment_for(COUNTED)


async def test_a_function_sees_exactly_its_environment_and_flushes_metrics_to_its_log(
    runtime: ProcessLambdaRuntime, capfd: pytest.CaptureFixture[str]
) -> None:
    result = await runtime.invoke(COUNTED, {"probe": 1})

    assert result["environ"] == runtime.environment_for(COUNTED), "nothing else, nothing of the parent's"
    assert "LEAKED_FROM_THE_PARENT" not in result["environ"]
    assert 0 < result["remaining_ms"] <= COUNTED.timeout_seconds * 1000
    log = runtime.log_path(COUNTED).read_text(encoding="utf-8")
    [emf] = emf_lines(log)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ProbeNamespace"
    assert emf["Probes"] == [1.0]
    assert emf["service"] == "probe-service"
    assert '"probe ran"' in log, "the handler's own logs go there too"
    assert "START RequestId:" in log
    assert "REPORT RequestId:" in log
    out, err = capfd.readouterr()
    assert "_aws" not in out + err, "the console is not the function's log"


async def test_without_a_namespace_the_metrics_flush_fails_the_invocation(task_root: Path, tmp_path: Path) -> None:
    """What broke a deployed stage: Powertools refuses to flush metrics without POWERTOOLS_METRICS_NAMESPACE."""
    runtime = make_runtime(task_root, tmp_path, VALUES | {Env.METRICS_NAMESPACE: None})
    try:
        with pytest.raises(FunctionError) as failure:
            await runtime.invoke(COUNTED, {"probe": 1})
    finally:
        runtime.close()
    assert failure.value.error_type == "SchemaValidationError"
    assert "namespace" in str(failure.value).lower()
    assert "[ERROR] SchemaValidationError" in runtime.log_path(COUNTED).read_text(encoding="utf-8")


async def test_a_handler_exception_reaches_the_caller_with_its_message(runtime: ProcessLambdaRuntime) -> None:
    with pytest.raises(FunctionError) as failure:
        await runtime.invoke(FAILS, {"message": "Unauthorized"})
    # An authorizer asks API Gateway for a 401 by failing with exactly this message.
    assert str(failure.value) == "Unauthorized"
    assert failure.value.error_type == "Exception"
    assert "probes.py" in failure.value.stack_trace
    with pytest.raises(FunctionError) as failure:
        await runtime.invoke(NOT_JSON, {})
    assert failure.value.error_type == "Runtime.MarshalError"


async def test_a_timed_out_or_crashed_container_is_replaced(runtime: ProcessLambdaRuntime) -> None:
    with pytest.raises(LambdaTimeout):
        await runtime.invoke(SLEEPS, {"seconds": 30})
    assert await runtime.invoke(SLEEPS, {"seconds": 0}) == {"slept": 0}

    with pytest.raises(FunctionError) as failure:
        await runtime.invoke(EXITS, {})
    assert failure.value.error_type == "Runtime.ExitError"
    assert "exit status 3" in str(failure.value)
    with pytest.raises(FunctionError):  # a fresh container, which exits again
        await runtime.invoke(EXITS, {})


def test_a_module_that_cannot_be_imported_fails_the_preload(task_root: Path, tmp_path: Path) -> None:
    runtime = make_runtime(task_root, tmp_path, VALUES)
    broken = FunctionSpec(name="broken", handler="broken.handler", description="", timeout_seconds=5)
    try:
        with pytest.raises(FunctionError, match="a_module_nobody_installed") as failure:
            runtime.preload([broken])
    finally:
        runtime.close()
    assert failure.value.error_type == "Runtime.ImportModuleError"


async def test_a_resolver_needs_thread_isolation() -> None:
    settings = LocalStackSettings(port=0, stack_json=None, web_dir=None, resolver=lambda function: print)
    with pytest.raises(ValueError, match="isolation='thread'"):
        await LocalStack(settings).start()
