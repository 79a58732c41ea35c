"""assistant.tracing: the X-Ray SDK only for sampled invocations in Lambda, real subsegments when it is on."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant import tracing

SAMPLED = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
UNSAMPLED = SAMPLED.replace("Sampled=1", "Sampled=0")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("LAMBDA_TASK_ROOT", "_X_AMZN_TRACE_ID", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    yield
    tracing.reset()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"_X_AMZN_TRACE_ID": SAMPLED}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "_X_AMZN_TRACE_ID": UNSAMPLED}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "_X_AMZN_TRACE_ID": SAMPLED}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "_X_AMZN_TRACE_ID": SAMPLED, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ],
)
def test_only_sampled_invocations_in_lambda_are_traced(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.enabled() is expected


def test_untraced_code_never_imports_the_xray_sdk() -> None:
    script = (
        "import sys\n"
        "from assistant import tracing\n"
        "@tracing.capture_handler\n"
        "def handler(event, context):\n"
        "    with tracing.subsegment('block'):\n"
        "        tracing.mark_since('wait', 0.0)\n"
        "    return event\n"
        "assert handler(1, None) == 1\n"
        "assert 'aws_xray_sdk' not in sys.modules, 'the X-Ray SDK was imported'\n"
    )
    env = {"PYTHONPATH": str(REPO_ROOT / "shared"), "LAMBDA_TASK_ROOT": "/var/task", "_X_AMZN_TRACE_ID": UNSAMPLED}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_a_sampled_invocation_records_the_handler_and_its_subsegments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", SAMPLED)
    recorder: Any = tracing.tracer().provider
    sent: list[Any] = []
    monkeypatch.setattr(recorder.emitter, "send_entity", sent.append)
    started = time.time() - 0.25

    @tracing.capture_handler
    def handler(event: int, context: object) -> int:
        with tracing.subsegment("model request"):
            tracing.mark_since("model first token", started)
        return event + 1

    assert handler(1, None) == 2
    assert _find(sent, "## handler") is not None
    assert _find(sent, "model request") is not None
    first_token = _find(sent, "model first token")
    assert first_token is not None
    assert first_token.end_time - first_token.start_time >= 0.25


def _find(entities: list[Any], name: str) -> Any:
    pending = list(entities)
    while pending:
        entity = pending.pop()
        if entity.name == name:
            return entity
        pending.extend(getattr(entity, "subsegments", []))
    return None
