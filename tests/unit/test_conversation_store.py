"""Conversations and the current-conversation pointer on the single table (moto), including the races."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from assistant.errors import NotFound
from assistant.protocol import ID_PATTERN
from assistant.stores.conversations import DEFAULT_TITLE, MAX_TITLE_CHARS, Conversation, ConversationStore
from assistant.stores.keys import CURRENT_CONVERSATION_SK, SK, key, user_pk
from tests.conftest import PagingTable

NOW = 1_700_000_000.0
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class HookedTable:
    """Runs ``hook`` right after the first read of the CURRENT pointer returns, to interleave a competitor."""

    def __init__(self, table: Any, hook: Callable[[], None]) -> None:
        self._table = table
        self._hook: Callable[[], None] | None = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def get_item(self, **kwargs: Any) -> Any:
        result = self._table.get_item(**kwargs)
        if kwargs["Key"][SK] == CURRENT_CONVERSATION_SK and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()
        return result


def conversation_items(table: Any, user_id: str) -> list[dict[str, Any]]:
    items = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": user_pk(user_id), ":prefix": "CONV#"},
    )["Items"]
    return list(items)


def pointer(table: Any, user_id: str) -> str | None:
    item = table.get_item(Key=key(user_id, CURRENT_CONVERSATION_SK)).get("Item")
    return str(item["conversationId"]) if item else None


@pytest.fixture
def store(ddb_table: Any) -> ConversationStore:
    return ConversationStore(ddb_table)


# --- create / get -----------------------------------------------------------------------------------------------


def test_create_makes_a_fresh_current_conversation(store: ConversationStore, ddb_table: Any) -> None:
    created = store.create("u1", now=NOW)

    assert created.conversation_id.startswith("c_")
    assert re.fullmatch(ID_PATTERN, created.conversation_id)
    assert created.title == DEFAULT_TITLE
    assert created.created_at == created.updated_at == "2023-11-14T22:13:20.000Z"
    assert ISO_Z.match(created.created_at)
    assert store.get("u1", created.conversation_id) == created
    assert pointer(ddb_table, "u1") == created.conversation_id
    assert store.current("u1", now=NOW + 5) == created


def test_new_conversation_replaces_the_current_one(store: ConversationStore, ddb_table: Any) -> None:
    first = store.current("u1", now=NOW)

    second = store.create("u1", now=NOW + 60)

    assert second.conversation_id != first.conversation_id
    assert store.current("u1", now=NOW + 61) == second
    assert store.get("u1", first.conversation_id) == first


def test_get_unknown_conversation_is_none(store: ConversationStore) -> None:
    assert store.get("u1", "c_doesnotexist") is None


def test_another_user_cannot_get_or_touch_my_conversation(store: ConversationStore, ddb_table: Any) -> None:
    mine = store.create("alice", now=NOW)

    assert store.get("bob", mine.conversation_id) is None
    with pytest.raises(NotFound):
        store.touch("bob", mine.conversation_id, now=NOW + 1, title="hijack")
    assert conversation_items(ddb_table, "bob") == []
    assert store.get("alice", mine.conversation_id) == mine
    assert store.list_recent("bob") == []


# --- current: first use and the race ---------------------------------------------------------------------------


def test_current_creates_one_on_first_use(store: ConversationStore, ddb_table: Any) -> None:
    first = store.current("u1", now=NOW)
    again = store.current("u1", now=NOW + 1)

    assert again == first
    assert len(conversation_items(ddb_table, "u1")) == 1


def test_concurrent_first_calls_end_with_one_current_conversation(ddb_table: Any) -> None:
    winner: list[Conversation] = []
    competitor = ConversationStore(ddb_table)
    # Our call reads "no pointer"; before it writes, the competitor runs its whole first call and wins.
    racing = ConversationStore(HookedTable(ddb_table, lambda: winner.append(competitor.current("u1", now=NOW))))

    loser_view = racing.current("u1", now=NOW)

    assert loser_view == winner[0]
    assert pointer(ddb_table, "u1") == winner[0].conversation_id
    # The loser's transaction was cancelled as a whole: no orphaned conversation.
    assert [item["conversationId"] for item in conversation_items(ddb_table, "u1")] == [winner[0].conversation_id]


def test_current_does_not_undo_a_concurrent_new_conversation(store: ConversationStore, ddb_table: Any) -> None:
    # A pointer that names a missing conversation is repaired, but only if nobody moved it meanwhile.
    ddb_table.put_item(Item={**key("u1", CURRENT_CONVERSATION_SK), "conversationId": "c_lost"})
    fresh: list[Conversation] = []
    racing = ConversationStore(HookedTable(ddb_table, lambda: fresh.append(store.create("u1", now=NOW))))

    result = racing.current("u1", now=NOW + 1)

    assert result == fresh[0]
    assert pointer(ddb_table, "u1") == fresh[0].conversation_id
    assert len(conversation_items(ddb_table, "u1")) == 1


def test_dangling_pointer_is_repaired(store: ConversationStore, ddb_table: Any) -> None:
    ddb_table.put_item(Item={**key("u1", CURRENT_CONVERSATION_SK), "conversationId": "c_lost"})

    repaired = store.current("u1", now=NOW)

    assert repaired.conversation_id != "c_lost"
    assert pointer(ddb_table, "u1") == repaired.conversation_id
    assert store.current("u1", now=NOW + 1) == repaired


def test_current_is_per_user(store: ConversationStore) -> None:
    alice = store.current("alice", now=NOW)
    bob = store.current("bob", now=NOW)

    assert alice.conversation_id != bob.conversation_id
    assert store.current("alice", now=NOW + 1) == alice


# --- list_recent ------------------------------------------------------------------------------------------------


def _with_a_message(store: ConversationStore, table: Any, conversation: Conversation) -> Conversation:
    """What sendMessage writes with a conversation's first message: from then on it is listed."""
    update = store.first_message_update("u1", conversation.conversation_id, text="hi", now=NOW)
    update["ExpressionAttributeValues"][":updated"] = conversation.updated_at
    table.update_item(**update)
    return replace(conversation, title="hi")


def test_list_recent_is_newest_updated_first(store: ConversationStore, ddb_table: Any) -> None:
    a = _with_a_message(store, ddb_table, store.create("u1", now=NOW))
    b = _with_a_message(store, ddb_table, store.create("u1", now=NOW + 10))
    c = _with_a_message(store, ddb_table, store.create("u1", now=NOW + 20))
    store.touch("u1", a.conversation_id, now=NOW + 30)

    ids = [conv.conversation_id for conv in store.list_recent("u1")]

    assert ids == [a.conversation_id, c.conversation_id, b.conversation_id]
    assert [conv.conversation_id for conv in store.list_recent("u1", limit=2)] == ids[:2]


def test_list_recent_reads_every_page_and_skips_other_items(ddb_table: Any) -> None:
    paging = PagingTable(ddb_table, page_size=2)
    store = ConversationStore(paging)
    created = [_with_a_message(store, ddb_table, store.create("u1", now=NOW + n)) for n in range(5)]
    ddb_table.put_item(Item={**key("u1", "CONN#tab"), "connectionId": "tab"})

    listed = store.list_recent("u1")

    assert listed == list(reversed(created))
    assert paging.queries >= 3


def test_list_recent_rejects_a_nonsense_limit(store: ConversationStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_recent("u1", limit=0)


# --- touch ------------------------------------------------------------------------------------------------------


def test_touch_updates_time_and_sets_the_first_title_only(store: ConversationStore) -> None:
    conv = store.create("u1", now=NOW)

    store.touch("u1", conv.conversation_id, now=NOW + 60, title="Trip to Lisbon")
    store.touch("u1", conv.conversation_id, now=NOW + 120, title="Something else")
    store.touch("u1", conv.conversation_id, now=NOW + 180)

    touched = store.get("u1", conv.conversation_id)
    assert touched is not None
    assert touched.title == "Trip to Lisbon"
    assert touched.updated_at == "2023-11-14T22:16:20.000Z"
    assert touched.created_at == conv.created_at


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("  many   spaces\nand\tnewlines ", "many spaces and newlines"),
        ("   ", DEFAULT_TITLE),
        ("x" * 500, "x" * (MAX_TITLE_CHARS - 1) + "…"),
    ],
)
def test_titles_are_tidied_for_the_list(store: ConversationStore, given: str, expected: str) -> None:
    conv = store.create("u1", now=NOW)

    store.touch("u1", conv.conversation_id, now=NOW + 1, title=given)

    touched = store.get("u1", conv.conversation_id)
    assert touched is not None
    assert touched.title == expected
    assert len(touched.title) <= MAX_TITLE_CHARS


@pytest.mark.parametrize("title", [None, "A title"])
def test_touch_of_a_missing_conversation_is_not_found_and_creates_nothing(
    store: ConversationStore, ddb_table: Any, title: str | None
) -> None:
    with pytest.raises(NotFound):
        store.touch("u1", "c_missing", now=NOW, title=title)

    assert conversation_items(ddb_table, "u1") == []


class RecordingTable:
    """Records the read requests, since moto is always consistent and cannot show a stale read."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.reads: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def get_item(self, **kwargs: Any) -> Any:
        self.reads.append(("get_item", kwargs))
        return self._table.get_item(**kwargs)

    def query(self, **kwargs: Any) -> Any:
        self.reads.append(("query", kwargs))
        return self._table.query(**kwargs)


def test_reads_that_follow_writes_are_consistent(ddb_table: Any) -> None:
    recording = RecordingTable(ddb_table)
    store = ConversationStore(recording)

    conv = store.current("u1", now=NOW)
    store.current("u1", now=NOW + 1)
    store.get("u1", conv.conversation_id)
    store.list_recent("u1")

    assert {name for name, _ in recording.reads} == {"get_item", "query"}
    assert all(kwargs.get("ConsistentRead") is True for _, kwargs in recording.reads)
