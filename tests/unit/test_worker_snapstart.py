"""``lambdas/worker.py`` at init: the ``openai`` SDK goes into a SnapStart snapshot, and nothing that must not.

Each case imports the handler in a fresh interpreter (a clean ``sys.modules``) with only the variables Lambda sets
before init: no table, queue or secret, so building the worker's settings or clients at init would raise, and any
connection attempt fails loudly. Lambda's ``snapshot_restore_py`` (shipped with its Python runtimes, not installed
here) is a stub that records the hooks registered with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SNAPSHOT_RESTORE_STUB = """
after_restore = []
before_snapshot = []

def register_after_restore(func, *args, **kwargs):
    after_restore.append((func, args, kwargs))
    return func

def register_before_snapshot(func, *args, **kwargs):
    before_snapshot.append((func, args, kwargs))
    return func
"""

IMPORT_THE_HANDLER = """
import json, random, socket, sys

def refuse(*args, **kwargs):
    raise AssertionError("the worker opened a connection at init")

socket.socket.connect = refuse
socket.create_connection = refuse

import worker
import snapshot_restore_py as hooks

print(json.dumps({
    "openai": "openai" in sys.modules,
    "after_restore": [func == random.seed and not args and not kwargs for func, args, kwargs in hooks.after_restore],
    "before_snapshot": len(hooks.before_snapshot),
}))
"""


def _import_worker(tmp_path: Path, initialization_type: str | None) -> dict[str, object]:
    (tmp_path / "snapshot_restore_py.py").write_text(SNAPSHOT_RESTORE_STUB)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lambdas"), str(REPO_ROOT / "shared"), str(tmp_path)]),
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "worker",
        "POWERTOOLS_METRICS_NAMESPACE": "SnapStartTest",
    }
    if initialization_type is not None:
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = initialization_type
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_THE_HANDLER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def test_a_snapshot_init_imports_openai_and_reseeds_random_after_restore(tmp_path: Path) -> None:
    imported = _import_worker(tmp_path, "snap-start")
    assert imported["openai"] is True
    # Exactly one hook: random.seed() with no argument, so each restored container draws fresh entropy.
    assert imported["after_restore"] == [True]
    assert imported["before_snapshot"] == 0


@pytest.mark.parametrize("initialization_type", ["on-demand", "provisioned-concurrency", None])
def test_other_inits_leave_openai_to_the_first_message(tmp_path: Path, initialization_type: str | None) -> None:
    imported = _import_worker(tmp_path, initialization_type)
    assert imported["openai"] is False
    assert imported["after_restore"] == []
