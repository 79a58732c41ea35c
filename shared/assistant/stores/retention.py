"""How long users' conversations are kept: a stage's ``retention_days`` as DynamoDB TTL values.

DynamoDB deletes an item some time after its ``expiresAt`` (usually within a few days, never before), so readers
also treat an item past it as gone (:meth:`Retention.expired`): what a user is shown never outlives the stated
period, whatever the TTL sweep's lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from assistant.stores.keys import TTL

#: Ten years: beyond this, "retention" is not a limit anyone states.
MAX_RETENTION_DAYS: Final = 3650
_DAY_S: Final = 24 * 60 * 60


@dataclass(frozen=True)
class Retention:
    """``days == 0``: off (conversations and turns carry no TTL; message records keep their own short one)."""

    days: int = 0

    @property
    def enabled(self) -> bool:
        return self.days > 0

    @property
    def seconds(self) -> int | None:
        return self.days * _DAY_S if self.days > 0 else None

    def expires_at(self, now: float) -> int | None:
        """The TTL (epoch seconds) of an item written or used at ``now``; ``None`` when retention is off."""
        return int(now) + self.days * _DAY_S if self.days > 0 else None


def expired(item: Mapping[str, Any], now: float) -> bool:
    """An item past its TTL, which DynamoDB has not swept yet: gone for every reader."""
    expires = item.get(TTL)
    return expires is not None and int(expires) <= now


#: Retention off: the default of every store.
NO_RETENTION: Final = Retention()
