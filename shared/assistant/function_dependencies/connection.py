"""What ``$connect`` and ``$disconnect`` are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from assistant import clients
from assistant.settings import ConnectSettings, DisconnectSettings

if TYPE_CHECKING:
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.rate_limits import RateLimiter


#: ``$connect``'s or ``$disconnect``'s settings (both read the table; ``$connect`` also its connection cap).
ConnectionSettingsT = TypeVar("ConnectionSettingsT", ConnectSettings, DisconnectSettings)


@dataclass(frozen=True)
class ConnectionDependencies(Generic[ConnectionSettingsT]):
    """What ``$connect`` and ``$disconnect`` use: their settings and the user's connection records."""

    settings: ConnectionSettingsT
    connections: ConnectionStore
    #: ``$connect``'s per-user bucket.
    rate_limiter: RateLimiter


def connection(settings: ConnectionSettingsT) -> ConnectionDependencies[ConnectionSettingsT]:
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.rate_limits import RateLimiter

    table = clients.table(settings.table_name, settings.region)
    return ConnectionDependencies(
        settings=settings, connections=ConnectionStore(table), rate_limiter=RateLimiter(table)
    )
