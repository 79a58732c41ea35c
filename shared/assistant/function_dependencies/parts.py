"""What several functions' dependencies are built from: a route's ``@connections`` client and its token check."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assistant import clients
from assistant.lifecycle import PerContainer
from assistant.revocation import RevocationCheck, revocation_check_from_env

if TYPE_CHECKING:
    from assistant.settings import CommandsSettings, DefaultSettings, SendMessageSettings


def connections_api_of(callback_url: str) -> Callable[[], Any]:
    """The ``@connections`` client of a route function, built when first needed: a route uses it only to close a
    connection whose token expired."""
    return PerContainer(lambda: clients.connections_api(callback_url))


def revocation_of(settings: DefaultSettings | SendMessageSettings | CommandsSettings) -> RevocationCheck:
    """A route function's check of connections' tokens with Cognito (no I/O until a frame needs an answer)."""
    return revocation_check_from_env(recheck_seconds=settings.token_recheck_seconds)
