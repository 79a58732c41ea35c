"""Tests reach the handlers' dependencies the way a container holds them: each handler module's ``dependencies``.

``use_dependencies`` runs a handler with its own dependencies but some parts replaced (through the dataclass's
constructor); ``reset_handlers`` gives every loaded handler module a fresh "container", built from the environment
as it is at its next invocation (what the local stack's thread isolation does for a new stack).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pytest

from assistant.wiring import FUNCTIONS
from scripts.local_stack.lambda_runtime.invocation import reset_handler_modules


def use_dependencies(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **parts: Any) -> Any:
    """``module``'s handler runs with its dependencies, ``parts`` replaced, until the test ends."""
    dependencies = dataclasses.replace(module.dependencies(), **parts)
    monkeypatch.setattr(module, "dependencies", lambda: dependencies)
    return dependencies


def reset_handlers() -> None:
    reset_handler_modules(FUNCTIONS)
