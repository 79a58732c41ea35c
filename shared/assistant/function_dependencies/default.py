"""What ``$default`` is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.function_dependencies.parts import connections_api_of, revocation_of
from assistant.refusals import RefusalCounter
from assistant.revocation import RevocationCheck
from assistant.settings import DefaultSettings


@dataclass(frozen=True)
class DefaultDependencies:
    settings: DefaultSettings
    connections_api: Callable[[], Any]
    revocation: RevocationCheck
    #: Refused frames per connection in this container (a connection that keeps hitting its limits is closed).
    refusals: RefusalCounter = field(default_factory=RefusalCounter)


def default(settings: DefaultSettings) -> DefaultDependencies:
    return DefaultDependencies(
        settings=settings, connections_api=connections_api_of(settings.callback_url), revocation=revocation_of(settings)
    )
