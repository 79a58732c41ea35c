"""Several items of the table in one consistent ``BatchGetItem``: one round trip where a request needs a handful
of unrelated items (``sendMessage`` reads a rate-limit bucket, today's usage and a conversation before it decides
anything).

Each store still owns its items: it hands out the key (``..._key``) and reads the item it gets back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from assistant.stores.keys import PK, SK

#: What DynamoDB accepts in one BatchGetItem.
MAX_KEYS: Final = 100
#: DynamoDB leaves keys unprocessed only when throttled; after this many rounds the read fails instead of looping.
_MAX_ROUNDS: Final = 5
#: The first pause before asking again for unprocessed keys, doubled each round (AWS: back off exponentially).
_FIRST_BACKOFF_S: Final = 0.025

Item = dict[str, Any]


class ItemReader:
    """``table`` is a boto3 DynamoDB ``Table`` resource: its client serializes plain Python values, as the table
    methods do, so keys and items here are plain dicts."""

    def __init__(self, table: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep

    def get(self, keys: Sequence[Mapping[str, str]]) -> list[Item | None]:
        """The items at ``keys``, read consistently, in the order of ``keys`` (``None``: no such item)."""
        if not keys:
            return []
        if len(keys) > MAX_KEYS:
            raise ValueError(f"one BatchGetItem reads at most {MAX_KEYS} items, got {len(keys)}")
        found: dict[tuple[str, str], Item] = {}
        pending: list[Mapping[str, str]] = list(keys)
        for round_ in range(_MAX_ROUNDS):
            if round_:
                self._sleep(_FIRST_BACKOFF_S * 2 ** (round_ - 1))
            response = self._table.meta.client.batch_get_item(
                RequestItems={self._table.name: {"Keys": pending, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._table.name, []):
                found[_identity(item)] = item
            pending = response.get("UnprocessedKeys", {}).get(self._table.name, {}).get("Keys", [])
            if not pending:
                return [found.get(_identity(k)) for k in keys]
        raise RuntimeError(f"DynamoDB left {len(pending)} key(s) unprocessed after {_MAX_ROUNDS} BatchGetItem calls")


def _identity(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item[PK]), str(item[SK])
