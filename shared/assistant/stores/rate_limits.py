"""Per-user rate limits: one token bucket per user and kind of request, kept in DynamoDB.

API Gateway's stage throttle is shared by every user, so one user could spend it for all; these buckets are per
user. A bucket holds up to ``burst`` tokens and refills at ``per_minute``; each request takes one. The bucket lives in
the table, not in a Lambda's memory, because every request may land in a different container: a read followed by a
write conditional on the version it read (optimistic concurrency) makes the limit hold across concurrent Lambdas.
A refused request writes nothing, so hammering a full bucket costs one read per frame.

Tokens are stored in thousandths (integers) so boto3 never needs ``Decimal``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError

from assistant.errors import RateLimited
from assistant.limits import RateLimit
from assistant.stores.batch import Item
from assistant.stores.conditions import condition_failed
from assistant.stores.keys import PK, TTL, key, rate_limit_sk

_MILLI = 1000
#: Concurrent takes on one bucket retry their read-modify-write this often before the request is refused.
_ATTEMPTS = 4


class BucketMoved(Exception):
    """The bucket's update was refused by its condition: another request took a token since it was read."""


#: Makes the bucket's ``UpdateItem`` request (see :meth:`RateLimiter.take`).
TokenWrite = Callable[[dict[str, Any]], None]


class _Unread:
    """The bucket has not been read for :meth:`RateLimiter.take` (``None`` would mean "read, and absent")."""


UNREAD: Final = _Unread()


class RateLimiter:
    def __init__(self, table: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    @staticmethod
    def bucket_key(user_id: str, bucket: str) -> dict[str, str]:
        """Where the user's ``bucket`` is kept: read it with other items (:class:`~assistant.stores.batch.ItemReader`)
        and pass it to :meth:`take` as ``read``."""
        return key(user_id, rate_limit_sk(bucket))

    def take(
        self,
        user_id: str,
        bucket: str,
        limit: RateLimit,
        *,
        read: Item | _Unread | None = UNREAD,
        write: TokenWrite | None = None,
    ) -> None:
        """Take one token from the user's ``bucket``, or raise :class:`RateLimited` with how long to wait.

        ``read``: the bucket's item as the caller just read it consistently (``None``: none yet), which spares the
        first read. ``write``: makes the bucket's update (an ``UpdateItem`` request, conditional on the version
        read) part of the caller's own transaction, which spares the bucket its own call; it raises
        :class:`BucketMoved` when that condition failed. A lost race (another request took a token since the read)
        re-reads the bucket and tries again either way.
        """
        for attempt in range(_ATTEMPTS):
            if attempt == 0 and not isinstance(read, _Unread):
                item = read
            else:
                item = self._table.get_item(Key=self.bucket_key(user_id, bucket), ConsistentRead=True).get("Item")
            now_ms = int(self._clock() * 1000)
            available = self._available(bucket, limit, item, now_ms)
            version = None if item is None else int(item["version"])
            update = _update(user_id, bucket, limit, available - _MILLI, now_ms, version)
            try:
                (write or self._write)(update)
            except BucketMoved:
                continue
            return
        # Lost the race every time: many requests of this user at this very moment, which is what the limit is for.
        raise RateLimited(f"Too many {bucket} requests at once; try again shortly.", retry_after_ms=1000)

    def check(self, bucket: str, limit: RateLimit, *, read: Item | None) -> None:
        """Raise :class:`RateLimited` if the bucket, as the caller just read it, has no token left; nothing is
        written (to refuse before other checks, then :meth:`take` with ``write``)."""
        self._available(bucket, limit, read, int(self._clock() * 1000))

    @staticmethod
    def _available(bucket: str, limit: RateLimit, item: Item | None, now_ms: int) -> int:
        """The bucket's tokens (in thousandths) at ``now_ms``; :class:`RateLimited` when less than one."""
        full = limit.burst * _MILLI
        if item is None:
            available = full
        else:
            elapsed_ms = max(0, now_ms - int(item["at"]))
            available = min(full, int(item["milliTokens"]) + int(elapsed_ms * _milli_per_ms(limit)))
        if available < _MILLI:
            wait_ms = math.ceil((_MILLI - available) / _milli_per_ms(limit))
            raise RateLimited(
                f"Too many {bucket} requests; try again in {wait_ms / 1000:.1f} s.", retry_after_ms=wait_ms
            )
        return available

    def _write(self, update: dict[str, Any]) -> None:
        try:
            self._table.update_item(**update)
        except ClientError as exc:
            if condition_failed(exc):
                raise BucketMoved from None
            raise


def _update(
    user_id: str, bucket: str, limit: RateLimit, milli_tokens: int, now_ms: int, version: int | None
) -> dict[str, Any]:
    """The ``UpdateItem`` request that leaves the bucket with ``milli_tokens``, if it is still at ``version``."""
    # The item is useless once the bucket would be full again; let DynamoDB delete it then.
    refill_s = math.ceil(limit.burst * 60 / limit.per_minute)
    condition = "attribute_not_exists(#pk)" if version is None else "#version = :version"
    values: dict[str, Any] = {
        ":tokens": milli_tokens,
        ":at": now_ms,
        ":next": 0 if version is None else version + 1,
        ":ttl": now_ms // 1000 + refill_s + 60,
    }
    names = {"#at": "at", "#version": "version", "#ttl": TTL}
    if version is None:
        names["#pk"] = PK  # DynamoDB refuses names an expression does not use
    else:
        values[":version"] = version
    return {
        "Key": RateLimiter.bucket_key(user_id, bucket),
        "UpdateExpression": "SET milliTokens = :tokens, #at = :at, #version = :next, #ttl = :ttl",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _milli_per_ms(limit: RateLimit) -> float:
    """The bucket's refill in thousandths of a token per millisecond."""
    return limit.per_minute * _MILLI / 60_000
