"""The offline model's server on 127.0.0.1 and the real `openai` SDK pointed at it, for its own tests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from scripts.local_stack.offline_model import OfflineModelServer, Pace


@pytest.fixture(scope="module")
def openai() -> ModuleType:
    # Imported here, not at module level: `import openai` costs most of a second for every test run.
    import openai

    return openai


@pytest.fixture
def server() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(pace=Pace.instant()) as running:
        yield running


@pytest.fixture
def client(openai: ModuleType, server: OfflineModelServer) -> Any:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10)
