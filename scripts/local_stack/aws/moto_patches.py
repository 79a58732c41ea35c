"""Where moto 5.2.5 behaves unlike AWS in ways the product depends on, patched process-wide when moto starts.

Each patch only ever makes moto more faithful, and is idempotent. DynamoDB's and SQS's are here; Cognito's
(:mod:`.moto_cognito`) and S3's (:mod:`.moto_s3_post_policy`) have modules of their own and are importable from
here too.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

from scripts.local_stack.aws.moto_cognito import SrpChallenge, revoke_cognito_tokens, verify_cognito_sign_in
from scripts.local_stack.aws.moto_s3_post_policy import enforce_s3_post_policy

__all__ = [
    "SqsListener",
    "SrpChallenge",
    "enforce_s3_post_policy",
    "keep_fifo_order_on_redelivery",
    "on_sqs_message",
    "revoke_cognito_tokens",
    "roll_back_transactions_by_item",
    "serialise_moto_dynamodb",
    "verify_cognito_sign_in",
]

#: moto's DynamoDB backend methods that read or write a table's items.
_MOTO_DYNAMODB_ITEM_METHODS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
)
_moto_lock = threading.RLock()


def serialise_moto_dynamodb() -> None:
    """Run moto's DynamoDB item operations one at a time (process-wide, idempotent).

    moto 5.2.5's ``transact_write_items`` deep-copies the whole table as a backup and, when a condition fails,
    restores that copy; its threaded server runs requests concurrently, so the copy can fail ("dictionary changed
    size during iteration", a 500 to the caller) and the restore can silently undo other requests' writes. DynamoDB
    itself has neither problem. Under concurrency (the throughput benchmark, two tabs, several users) that loses
    replies the product delivered correctly, so the local stack applies this when it starts moto.
    """
    from moto.dynamodb.models import DynamoDBBackend

    for name in _MOTO_DYNAMODB_ITEM_METHODS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_serialised", False):
            continue

        def locked(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _moto_lock:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


def roll_back_transactions_by_item() -> None:
    """Back up only the items a transaction writes, instead of whole tables (process-wide, idempotent).

    moto 5.2.5's ``transact_write_items`` deep-copies each table a transaction names, once per item of the
    transaction, before it starts: its rollback. That costs time in proportion to the table, so in a long local
    session (or the benchmark) every claim and every message record got slower as the table grew (a two-item
    claim took ~16 ms on a table of a few hundred items, on the path to the first text). DynamoDB's own cost does
    not depend on the table's size. This copies no table (moto's ``copy`` is handed a stand-in that returns a table
    as is); instead the items at the transaction's keys are copied before it runs and put back if it fails, which
    is all a rollback has to undo. Must run under :func:`serialise_moto_dynamodb`'s lock, which it takes, so no
    other write lands between the backup and a restore.
    """
    import moto.dynamodb.models as moto_dynamodb
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(DynamoDBBackend.transact_write_items, "_rolls_back_by_item", False):
        return

    class _TablesAsThey:
        """moto's module sees this as ``copy``: a table's "backup" is the table itself."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    moto_dynamodb.copy = _TablesAsThey  # type: ignore[assignment]
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        with _moto_lock:
            backups = []
            for table_name, item_key in _written_keys(backend, transact_items):
                table = backend.get_table(table_name)
                try:
                    hash_key, range_key = backend.get_keys_value(table, item_key)
                except MockValidationException:
                    continue  # a malformed key: moto refuses that item before writing it
                backups.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            try:
                original(backend, transact_items)
            except Exception:
                for table, hash_key, range_key, item in backups:
                    if item is None:
                        table.delete_item(hash_key, range_key)
                    else:
                        table.put_item(item.to_json()["Attributes"])
                raise

    functools.update_wrapper(transact_write_items, original)
    transact_write_items._rolls_back_by_item = True  # type: ignore[attr-defined]
    transact_write_items._serialised = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign, assignment]


def _written_keys(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(table, key)`` of every item of a transaction that exists in a known table, as moto finds them."""
    keys = []
    for entry in transact_items:
        for operation, request in entry.items():
            table_name = request.get("TableName")
            if table_name not in backend.tables:
                continue  # moto fails the transaction itself, before it writes anything
            if operation == "Put":
                table = backend.tables[table_name]
                attributes = request["Item"]
                names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
                if any(name not in attributes for name in names):
                    continue
                keys.append((table_name, {name: attributes[name] for name in names}))
            elif "Key" in request:
                keys.append((table_name, request["Key"]))
    return keys


def keep_fifo_order_on_redelivery() -> None:
    """Make moto redeliver a FIFO group's failed records in order, as SQS does.

    moto 5.2.5 counts a received message whose visibility timeout has expired as still "in flight" for its group.
    When records b and c of a group both fail and become visible again, b is skipped because c still looks in
    flight, and c is delivered before b. A message that is visible again no longer holds its group in SQS, so it
    must not here either. (Process-wide, but only ever makes moto more faithful; checked by test_poller.py.)
    """
    from moto.sqs.models import Queue

    def pending_message_groups(queue: Any) -> set[str]:
        return {
            message.group_id
            for message in queue._pending_messages
            if message.group_id is not None and not message.visible
        }

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[method-assign, assignment]


#: Called with a queue's name whenever moto adds a message to it (see :func:`on_sqs_message`).
SqsListener = Callable[[str], None]
_sqs_listeners: list[SqsListener] = []
_sqs_listeners_lock = threading.Lock()


def on_sqs_message(listener: SqsListener) -> Callable[[], None]:
    """Call ``listener(queue_name)`` each time moto (in this process, server or ``mock_aws``) adds a message to a
    queue: a send, a batch send, a move to the dead-letter queue. Returns the function that removes the listener.

    This is how the local event source long-polls in effect (:mod:`scripts.local_stack.event_source.sqs_poller`):
    SQS answers a waiting ``ReceiveMessage`` as soon as a message arrives, and Lambda's event source mapping always
    has one waiting, so a message reaches the worker without a polling interval in between. moto's own long poll
    cannot stand in for that (it busy-waits while another message of a FIFO group is in flight, and its receive is
    not safe to run concurrently on one queue), so the poller short-polls and sleeps, and this wakes it.
    The listener runs on moto's request thread and must not block.
    """
    _listen_to_sqs_sends()
    with _sqs_listeners_lock:
        _sqs_listeners.append(listener)

    def remove() -> None:
        with _sqs_listeners_lock:
            if listener in _sqs_listeners:
                _sqs_listeners.remove(listener)

    return remove


def _listen_to_sqs_sends() -> None:
    from moto.sqs.models import Queue

    original = Queue.add_message
    if getattr(original, "_signals", False):
        return

    def add_message(queue: Any, message: Any) -> None:
        original(queue, message)
        with _sqs_listeners_lock:
            listeners = list(_sqs_listeners)
        for listener in listeners:
            listener(queue.name)

    functools.update_wrapper(add_message, original)
    add_message._signals = True  # type: ignore[attr-defined]
    Queue.add_message = add_message  # type: ignore[method-assign, assignment]
