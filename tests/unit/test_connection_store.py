"""Connection records on the single table (moto)."""

from __future__ import annotations

from typing import Any

from assistant.stores.connections import ConnectionStore
from assistant.stores.keys import SK, key
from assistant.wiring import CONNECTION_TTL_SECONDS
from tests.conftest import FakeClock, PagingTable

NOW = 1_700_000_000.25


def test_add_writes_the_record_with_ttl(ddb_table: Any) -> None:
    ConnectionStore(ddb_table).add("u1", "conn-A=", now=NOW)

    item = ddb_table.get_item(Key=key("u1", "CONN#conn-A="))["Item"]
    assert item["connectedAt"] == "2023-11-14T22:13:20.250Z"
    assert item["expiresAt"] == int(NOW) + CONNECTION_TTL_SECONDS
    assert item["connectionId"] == "conn-A="


def test_every_tab_is_a_connection_of_its_own(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    for connection_id in ("tab-1", "tab-2", "tab-3"):
        store.add("u1", connection_id, now=fake_clock.now)

    store.remove("u1", "tab-2")

    assert sorted(store.list_ids("u1")) == ["tab-1", "tab-3"]


def test_remove_is_idempotent(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("u1", "tab-1", now=fake_clock.now)

    store.remove("u1", "tab-1")
    store.remove("u1", "tab-1")
    store.remove("u1", "never-existed")

    assert store.list_ids("u1") == []


def test_users_do_not_see_each_others_connections(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("alice", "a-1", now=fake_clock.now)
    store.add("bob", "b-1", now=fake_clock.now)
    # A user id that is a prefix of another must not pick up the other's connections.
    store.add("bo", "bo-1", now=fake_clock.now)

    assert store.list_ids("alice") == ["a-1"]
    assert store.list_ids("bob") == ["b-1"]
    assert store.list_ids("bo") == ["bo-1"]
    assert store.list_ids("carol") == []


def test_removing_another_users_connection_id_does_nothing(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("alice", "a-1", now=fake_clock.now)

    store.remove("bob", "a-1")

    assert store.list_ids("alice") == ["a-1"]


def test_expired_records_are_ignored_before_ttl_deletes_them(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("u1", "old", now=fake_clock.now)
    fake_clock.advance(CONNECTION_TTL_SECONDS - 10)
    store.add("u1", "new", now=fake_clock.now)

    assert sorted(store.list_ids("u1")) == ["new", "old"]
    fake_clock.advance(10)
    assert store.list_ids("u1") == ["new"]
    # Still in the table (TTL deletion lags), just not live.
    assert "Item" in ddb_table.get_item(Key=key("u1", "CONN#old"))


def test_list_ids_reads_every_page(ddb_table: Any, fake_clock: FakeClock) -> None:
    paging = PagingTable(ddb_table, page_size=2)
    store = ConnectionStore(paging, clock=fake_clock)
    expected = [f"tab-{n:02d}" for n in range(7)]
    for connection_id in expected:
        store.add("u1", connection_id, now=fake_clock.now)
    # Other item types in the partition are not connections.
    ddb_table.put_item(Item={**key("u1", "CONV#c_1"), "title": "x"})
    ddb_table.put_item(Item={**key("u1", "CURRENT"), "conversationId": "c_1"})

    assert sorted(store.list_ids("u1")) == expected
    assert paging.queries >= 4


def test_list_ids_strips_only_the_prefix(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("u1", "CONN#odd", now=fake_clock.now)

    assert store.list_ids("u1") == ["CONN#odd"]
    assert ddb_table.scan()["Items"][0][SK] == "CONN#CONN#odd"


def test_list_ids_reads_consistently(ddb_table: Any, fake_clock: FakeClock) -> None:
    # moto is always consistent, so only the request shows that a tab that just connected is not missed.
    paging = PagingTable(ddb_table, page_size=100)
    calls: list[dict[str, Any]] = []
    original = paging.query

    def recording_query(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    paging.query = recording_query  # type: ignore[method-assign]
    ConnectionStore(paging, clock=fake_clock).list_ids("u1")

    assert calls
    assert all(call["ConsistentRead"] is True for call in calls)


def test_the_cap_holds_and_a_removed_connection_frees_its_place(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    assert [store.add("u1", f"tab-{i}", now=fake_clock.now, cap=2) for i in range(3)] == [True, True, False]
    assert store.open_count("u1") == 2
    assert store.add("u1", "tab-0", now=fake_clock.now, cap=2)  # a repeated $connect of an open one: counted once
    assert store.open_count("u1") == 2

    store.remove("u1", "tab-0")
    store.remove("u1", "tab-0")  # $disconnect after a Gone: uncounted once
    assert store.open_count("u1") == 1
    assert store.add("u1", "tab-3", now=fake_clock.now, cap=2)
    assert sorted(store.list_ids("u1")) == ["tab-1", "tab-3"]


def test_records_whose_disconnect_never_came_are_reclaimed_at_the_cap(ddb_table: Any, fake_clock: FakeClock) -> None:
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.add("u1", "lost", now=fake_clock.now, cap=2)
    store.add("u1", "ttl-deleted", now=fake_clock.now, cap=2)
    ddb_table.delete_item(Key=key("u1", "CONN#ttl-deleted"))  # DynamoDB's TTL deleted it; the counter still has it
    fake_clock.advance(CONNECTION_TTL_SECONDS)  # and "lost" expired without a $disconnect

    assert store.add("u1", "new-1", now=fake_clock.now, cap=2)
    assert store.add("u1", "new-2", now=fake_clock.now, cap=2)
    assert not store.add("u1", "new-3", now=fake_clock.now, cap=2)
    assert sorted(store.list_ids("u1")) == ["new-1", "new-2"]
    assert store.open_count("u1") == 2
    assert "Item" not in ddb_table.get_item(Key=key("u1", "CONN#lost"))
    store.remove("u1", "lost")  # its late $disconnect uncounts nothing
    assert store.open_count("u1") == 2


def test_a_record_written_before_the_counter_is_still_removed(ddb_table: Any, fake_clock: FakeClock) -> None:
    ddb_table.put_item(Item={**key("u1", "CONN#legacy"), "connectionId": "legacy", "expiresAt": 4_000_000_000})
    store = ConnectionStore(ddb_table, clock=fake_clock)
    store.remove("u1", "legacy")
    assert store.list_ids("u1") == []
    assert store.open_count("u1") == 0
