"""``ItemReader``: several items in one consistent BatchGetItem, in the order asked, against moto."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from assistant.stores.batch import MAX_KEYS, ItemReader
from assistant.stores.keys import key


def test_items_come_back_in_the_order_asked_with_none_for_absent_ones(ddb_table: Any) -> None:
    ddb_table.put_item(Item={**key("alice", "A"), "value": 1})
    ddb_table.put_item(Item={**key("alice", "C"), "value": 3})
    ddb_table.put_item(Item={**key("bob", "A"), "value": 99})

    items = ItemReader(ddb_table).get([key("alice", "C"), key("alice", "B"), key("alice", "A")])

    assert [item and item["value"] for item in items] == [3, None, 1]


def test_nothing_asked_costs_no_call(ddb_table: Any) -> None:
    class NoCalls:
        name = ddb_table.name
        meta = SimpleNamespace(client=None)

    assert ItemReader(NoCalls()).get([]) == []


def test_more_keys_than_one_call_takes_are_refused(ddb_table: Any) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        ItemReader(ddb_table).get([key("alice", str(i)) for i in range(MAX_KEYS + 1)])


class _Throttled:
    """Answers the first ``rounds`` calls with every key unprocessed, as DynamoDB does when it throttles (moto never
    does, so the table is wrapped)."""

    def __init__(self, table: Any, rounds: int) -> None:
        self.name = table.name
        self.calls: list[int] = []
        self._rounds = rounds
        outer = self

        class Client:
            def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
                keys = RequestItems[outer.name]["Keys"]
                assert RequestItems[outer.name]["ConsistentRead"] is True
                outer.calls.append(len(keys))
                if len(outer.calls) <= outer._rounds:
                    return {"Responses": {outer.name: []}, "UnprocessedKeys": {outer.name: {"Keys": keys}}}
                return dict(table.meta.client.batch_get_item(RequestItems=RequestItems))

        self.meta = SimpleNamespace(client=Client())


def test_unprocessed_keys_are_asked_again_after_a_growing_pause(ddb_table: Any) -> None:
    ddb_table.put_item(Item={**key("alice", "A"), "value": 1})
    throttled = _Throttled(ddb_table, rounds=2)
    pauses: list[float] = []

    items = ItemReader(throttled, sleep=pauses.append).get([key("alice", "A"), key("alice", "B")])

    assert [item and item["value"] for item in items] == [1, None]
    assert throttled.calls == [2, 2, 2]
    assert len(pauses) == 2
    assert pauses[1] == 2 * pauses[0]


def test_a_read_that_stays_throttled_fails_instead_of_looping(ddb_table: Any) -> None:
    throttled = _Throttled(ddb_table, rounds=1_000)

    with pytest.raises(RuntimeError, match="unprocessed"):
        ItemReader(throttled, sleep=lambda _: None).get([key("alice", "A")])
    assert len(throttled.calls) == 5
