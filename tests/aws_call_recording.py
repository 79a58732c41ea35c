"""Pytest hooks that record the functions' AWS calls during the integration and e2e tests (see
:mod:`scripts.local_stack.lambda_runtime.aws_calls`) and run the least-privilege proof after them.

``tests/conftest.py`` imports these hooks. Every handler module's handler is wrapped when the session starts,
before any test imports it, so a call made while it runs in this process is attributed to its function. Recording is
on only while a test of ``tests/integration/`` or ``tests/e2e/`` runs (its setup and teardown included): in this
process for handlers called in-process, and through :data:`RECORD_DIR_ENV` for the local stack's containers started
meanwhile. Records go to files in a directory of the session (or the one ``ASSISTANT_AWS_CALL_RECORD_DIR`` names,
for a separate pass), so processes of their own add to them and a test can read them all.

Why a test moved to the end rather than a ``pytest_sessionfinish`` check: a test's failure is reported like any other
(its name, its message, ``-x``, the summary), and its fixtures (the synthesized template) are the infra suite's. The
proof's tests are moved after every other test at collection; they know from the collection whether the suites that
record ran in full in this session, and check for unused grants only then.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_stack.lambda_runtime import aws_calls

RECORD_DIR_ENV = aws_calls.RECORD_DIR_ENV
#: The suites whose handler calls are recorded.
RECORDED_SUITES = ("tests/integration/", "tests/e2e/")
#: The proof, run after everything else.
PROOF_MODULE = "tests/infra/test_least_privilege.py"

_record_dir_key = pytest.StashKey[Path]()
_deselected_key = pytest.StashKey[set[str]]()
_created_key = pytest.StashKey[bool]()


def record_dir(config: pytest.Config) -> Path:
    return config.stash[_record_dir_key]


def recorded_suites_complete(config: pytest.Config) -> dict[str, bool]:
    """Each recorded suite: whether the session was asked for all of it (a path that holds the whole suite) and none
    of its tests was deselected (``-k``, ``-m``)."""
    root = config.rootpath
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args if "::" not in arg]
    deselected = config.stash.get(_deselected_key, set())
    return {
        suite: suite not in deselected and any((root / suite).resolve().is_relative_to(path) for path in asked)
        for suite in RECORDED_SUITES
    }


def pytest_configure(config: pytest.Config) -> None:
    given = os.environ.get(RECORD_DIR_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="aws-calls-"))
    config.stash[_record_dir_key] = directory
    config.stash[_created_key] = not given
    aws_calls.install(directory)
    aws_calls.set_enabled(False)
    _attribute_handlers()


def _attribute_handlers() -> None:
    """Wrap each handler module's handler before any test takes it, so in-process calls are attributed to it."""
    from assistant.wiring import FUNCTIONS

    for spec in FUNCTIONS:
        module_name, _, attribute = spec.handler.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: S112 - the tests that import it report the error, with their names
            continue
        setattr(module, attribute, aws_calls.attributed(spec.handler, getattr(module, attribute)))


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_created_key, False):
        shutil.rmtree(config.stash[_record_dir_key], ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    proof = [item for item in items if item.nodeid.startswith(PROOF_MODULE)]
    if proof:
        items[:] = [item for item in items if not item.nodeid.startswith(PROOF_MODULE)] + proof


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        deselected = item.config.stash.setdefault(_deselected_key, set())
        deselected.update(suite for suite in RECORDED_SUITES if item.nodeid.startswith(suite))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    recorded = item.nodeid.startswith(RECORDED_SUITES)
    if recorded:
        os.environ[RECORD_DIR_ENV] = str(record_dir(item.config))
        aws_calls.set_enabled(True)
    try:
        return (yield)
    finally:
        if recorded:
            aws_calls.set_enabled(False)
            os.environ.pop(RECORD_DIR_ENV, None)
