"""Fixtures for the tests against servers this project did not write: the bridge, and the backend behind it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.thirdparty.bridge import Bridge, require_bridge
from tests.thirdparty.chat_backend import API_KEY, ChatBackend


@pytest.fixture(scope="module")
def chat_backend() -> Iterator[ChatBackend]:
    with ChatBackend() as backend:
        yield backend


@pytest.fixture(scope="module")
def bridge(chat_backend: ChatBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    require_bridge()
    with Bridge(chat_backend.root_url, API_KEY, tmp_path_factory.mktemp("open-responses-server")) as running:
        yield running


@pytest.fixture
def backend(chat_backend: ChatBackend, bridge: Bridge) -> ChatBackend:
    """The backend with nothing recorded yet, the bridge running in front of it."""
    chat_backend.state.reset()
    return chat_backend
