"""Reading items under a stage's retention (``assistant.limits.Retention`` sets their ``expiresAt``).

DynamoDB deletes an item some time after its ``expiresAt`` (usually within a few days, never before), so readers
also treat an item past it as gone (:func:`expired`): what a user is shown never outlives the stated period,
whatever the TTL sweep's lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assistant.limits import MAX_RETENTION_DAYS, NO_RETENTION, Retention
from assistant.stores.keys import TTL

__all__ = ["MAX_RETENTION_DAYS", "NO_RETENTION", "Retention", "expired"]


def expired(item: Mapping[str, Any], now: float) -> bool:
    """An item past its TTL, which DynamoDB has not swept yet: gone for every reader."""
    expires = item.get(TTL)
    return expires is not None and int(expires) <= now
