"""Handlers import with garbage collection paused, then freeze what they imported (assistant.coldstart)."""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import coldstart
from assistant.coldstart import collection_paused
from assistant.wiring import FUNCTIONS

HANDLERS_DIR = Path(__file__).resolve().parents[2] / "lambdas"


@pytest.fixture
def collection_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


@pytest.fixture
def first_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a fresh container: nothing frozen by this module yet (and what a test freezes is let go after)."""
    monkeypatch.setattr(coldstart, "_frozen", False)
    yield
    gc.unfreeze()


def test_no_collection_inside_then_what_exists_is_frozen_and_collection_resumes(
    collection_on: None, first_in_process: None
) -> None:
    frozen_before = gc.get_freeze_count()
    with collection_paused():
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]  # container objects, as an import builds them
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)


def test_only_the_first_pause_in_a_process_freezes(collection_on: None, first_in_process: None) -> None:
    """A long-lived process (tests, the local stack) builds model clients again and again: freezing each time would
    keep every reference cycle it held at those moments for good."""
    with collection_paused():
        pass
    frozen = gc.get_freeze_count()
    with collection_paused():
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    assert built


def test_collection_that_was_off_stays_off(collection_on: None) -> None:
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


def test_collection_resumes_when_an_import_fails(collection_on: None) -> None:
    with pytest.raises(ImportError), collection_paused():
        import assistant.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()


@pytest.mark.parametrize("module", sorted({spec.handler.split(".")[0] for spec in FUNCTIONS}))
def test_every_handler_imports_inside_collection_paused(module: str) -> None:
    """A new handler that imports outside the block would quietly pay the collection passes again."""
    tree = ast.parse((HANDLERS_DIR / f"{module}.py").read_text())
    outside = [
        ast.unparse(node)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and getattr(node, "module", None) not in ("__future__", "assistant.coldstart")
    ]
    assert outside == [], f"{module}.py imports outside `with collection_paused():`"
    [block] = [node for node in tree.body if isinstance(node, ast.With)]
    assert ast.unparse(block.items[0].context_expr) == "collection_paused()"
    assert any(isinstance(node, ast.Import | ast.ImportFrom) for node in block.body)
