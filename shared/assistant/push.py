"""Frames out to WebSocket connections, and the coalescing of model text into frames.

Every ``PostToConnection`` costs an API Gateway request and a round trip, so the worker does not post each model
token: :class:`DeltaCoalescer` batches text deltas into frames, and :class:`Broadcaster` caches a user's connection
list for a moment so a streamed reply does not query DynamoDB on every flush.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from assistant.reply_frames import Delta
from assistant.server_frames import ServerFrameModel
from assistant.stores.connections import ConnectionStore
from assistant.wiring import MAX_FRAME_BYTES

logger = Logger(child=True)

#: A reply streams for minutes; failing one post fast and letting the retry policy try again beats waiting.
_CONNECT_TIMEOUT_SECONDS: Final = 2
_READ_TIMEOUT_SECONDS: Final = 5
_MAX_ATTEMPTS: Final = 3
#: Past this many cached users, stale entries are dropped so a long-lived worker does not grow without bound.
_CACHE_PRUNE_SIZE: Final = 256


class PushFailed(Exception):
    """No connection of the user could be reached, for reasons other than all of them being closed.

    Raised so the worker's retry machinery (SQS redelivery) sees the failure instead of a reply lost in silence.
    """


class _Outcome(Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


class Broadcaster:
    """Posts frames to every live connection of a user (every tab), pruning connections that have closed.

    ``client`` is a boto3 ``apigatewaymanagementapi`` client (boto3 ships no type information, hence ``Any``).
    """

    def __init__(
        self,
        client: Any,
        connections: ConnectionStore,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._connections = connections
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def send(self, user_id: str, frame: ServerFrameModel, *, except_connection: str | None = None) -> int:
        """Post ``frame`` to each of the user's connections (but ``except_connection``, which a route answers
        itself); return how many received it.

        0 with no exception means the user has no open connection (a closed tab is not an error). Raises
        :class:`PushFailed` if there were connections and none could be reached for any other reason.
        """
        data = _encode(frame)
        connection_ids = self._connection_ids(user_id)
        delivered = failed = 0
        for connection_id in [c for c in connection_ids if c != except_connection]:
            outcome = self._post(connection_id, data)
            if outcome is _Outcome.DELIVERED:
                delivered += 1
            elif outcome is _Outcome.GONE:
                self._forget(user_id, connection_id)
            else:
                failed += 1
        if failed and not delivered:
            raise PushFailed(f"none of {failed} connection(s) of the user could be reached")
        return delivered

    def invalidate(self, user_id: str) -> None:
        """Forget the cached connection list, e.g. after ``$connect`` in the same process (local stack)."""
        self._cache.pop(user_id, None)

    def refresh(self, user_id: str) -> None:
        """Read the user's connection list now, for the posts of the next ``cache_seconds``: the worker calls this
        when a model response starts, so the read overlaps the model's time to its first token instead of
        delaying the first frame."""
        self.invalidate(user_id)
        self._connection_ids(user_id)

    def _connection_ids(self, user_id: str) -> list[str]:
        now = self._clock()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        if len(self._cache) >= _CACHE_PRUNE_SIZE:
            self._cache = {user: entry for user, entry in self._cache.items() if now - entry[0] < self._cache_seconds}
        ids = self._connections.list_ids(user_id)
        self._cache[user_id] = (now, ids)
        return ids

    def _forget(self, user_id: str, connection_id: str) -> None:
        self._connections.remove(user_id, connection_id)
        cached = self._cache.get(user_id)
        if cached is not None and connection_id in cached[1]:
            cached[1].remove(connection_id)

    def _post(self, connection_id: str, data: bytes) -> _Outcome:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "GoneException" or status == 410:
                logger.info("Connection gone; removing it", extra={"connection_id": connection_id})
                return _Outcome.GONE
            logger.warning(
                "PostToConnection failed",
                extra={"connection_id": connection_id, "error_code": error.get("Code"), "status": status},
            )
            return _Outcome.FAILED
        except BotoCoreError as exc:
            # Timeouts and connection errors after botocore's retries: this connection failed, the others may not.
            logger.warning(
                "PostToConnection failed",
                extra={"connection_id": connection_id, "error_code": type(exc).__name__},
            )
            return _Outcome.FAILED
        return _Outcome.DELIVERED


def management_client(callback_url: str) -> Any:
    """The ``@connections`` client of a stage; ``callback_url`` is ``https://{api}.execute-api.{region}.amazonaws.com/{stage}``."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        read_timeout=_READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": _MAX_ATTEMPTS},
        # One invocation per Lambda container; the local stack runs many in one process on this client.
        max_pool_connections=50,
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=callback_url, config=config)


def post_then_close(client: Any, connection_id: str, frame: ServerFrameModel) -> None:
    """Tell a connection why, then end it from the server side (API Gateway then sends ``$disconnect``).

    A connection that is already gone is fine either way: there is nobody left to tell.
    """
    for call in (
        lambda: client.post_to_connection(ConnectionId=connection_id, Data=_encode(frame)),
        lambda: client.delete_connection(ConnectionId=connection_id),
    ):
        try:
            call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "GoneException":
                raise
            return


def _encode(frame: ServerFrameModel) -> bytes:
    data = frame.to_json().encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES}-byte WebSocket frame limit")
    return data


# --- Coalescing text deltas ---------------------------------------------------------------------------------------

#: The frame around a delta's text at its largest: a 64-character message id and a seq no reply will reach.
_DELTA_OVERHEAD: Final = len(Delta(message_id="m" * 64, seq=2**63 - 1, text="").to_json().encode("utf-8"))
#: JSON-encoded UTF-8 bytes of text one ``delta`` frame can carry.
DELTA_TEXT_BUDGET: Final = MAX_FRAME_BYTES - _DELTA_OVERHEAD
#: The most bytes one character can take in a JSON string (``\u001f``; a lone surrogate escaped as ``\udXXX``).
_MAX_CHAR_BYTES: Final = 6
_SHORT_ESCAPES: Final = frozenset('"\\\b\f\n\r\t')
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _json_char_bytes(char: str) -> int:
    """Bytes ``char`` takes inside a JSON string as pydantic (and ``json.dumps(ensure_ascii=False)``) write it."""
    code = ord(char)
    if char in _SHORT_ESCAPES:
        return 2
    if code < 0x20 or 0xD800 <= code <= 0xDFFF:
        return _MAX_CHAR_BYTES
    if code < 0x80:
        return 1
    if code < 0x800:
        return 2
    if code < 0x10000:
        return 3
    return 4


def _is_high_surrogate(char: str) -> bool:
    return 0xD800 <= ord(char) <= 0xDBFF


def _is_low_surrogate(char: str) -> bool:
    return 0xDC00 <= ord(char) <= 0xDFFF


def split_for_frame(text: str, budget_bytes: int) -> list[str]:
    """Split ``text`` into pieces whose JSON-string encoding takes at most ``budget_bytes`` UTF-8 bytes each.

    Counts the bytes as they will be on the wire (multibyte UTF-8, ``\\"``, ``\\\\``, ``\\u0001``) and cuts only
    between characters, never between the halves of a surrogate pair. ``"".join(result) == text``.
    """
    if budget_bytes < 2 * _MAX_CHAR_BYTES:
        raise ValueError(f"budget_bytes must be at least {2 * _MAX_CHAR_BYTES}")
    if not text:
        return []
    # Nothing can exceed 6 bytes a character, so most deltas need no counting at all.
    if len(text) * _MAX_CHAR_BYTES <= budget_bytes:
        return [text]
    chunks: list[str] = []
    start = used = 0
    index = 0
    while index < len(text):
        cost = _json_char_bytes(text[index])
        if used + cost <= budget_bytes:
            used += cost
            index += 1
            continue
        cut = index
        if cut - 1 > start and _is_high_surrogate(text[cut - 1]) and _is_low_surrogate(text[cut]):
            cut -= 1
        chunks.append(text[start:cut])
        start = index = cut
        used = 0
    chunks.append(text[start:])
    return chunks


def _tidy_surrogates(text: str) -> str:
    """Join surrogate pairs into their character and replace lone halves with U+FFFD.

    Text cannot be sent with surrogate code points in it (UTF-8 has no encoding for them); they appear when a
    pair was split across two deltas and each half was decoded on its own.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


#: Weight of the newest gap between deltas in their running average (how fast the model types right now).
_DELTA_GAP_SMOOTHING = 0.2
#: How much the interval grows with each frame of a run. With the stage defaults it reaches the full interval in one
#: step: the first text at once, the next after the first interval (the reply is visibly under way), then a frame
#: every full interval. A middle step would cost a frame per reply for nothing a reader sees (docs/benchmarks.md).
DEFAULT_GROWTH: Final = 3.5
#: How far past the deadline, as a share of the gap between deltas, the next delta may be expected and still be
#: waited for. Without it, a pace whose tokens land right on the deadline would be cut a token early half the time
#: on timing noise alone, one more frame for nothing; with it, a gap can run over the interval by a quarter of a
#: token's gap, unseen.
_DEADLINE_SLACK_OF_GAP = 0.25


class DeltaCoalescer:
    """Batches a reply's text deltas into frame-sized chunks. Pure logic; the caller posts the chunks.

    The first text of a reply is released at once, because the time until the first visible text is what a user
    perceives as speed. After that, a frame goes out every ``interval`` at most: text is released on the last
    token that arrives before the interval since the previous frame runs out (the next token is expected later
    than that, judging by how fast tokens have been arriving, by more than a quarter of a token's gap), or once
    ``max_chars`` are waiting. Releasing on the last token before the deadline rather than the first one after it
    keeps the gap between frames within the interval (plus at most that quarter of a token), so frames can be as
    large as the longest gap a reader should see allows. :meth:`drain` releases the rest and starts over, so text
    after a pause (a tool call) again shows at once.

    Text also waits at least ``interval_seconds`` (the first interval) before it goes out: when posting a frame took
    longer than the interval (a slow or loaded API), the tokens that queued up meanwhile are read in a burst and go
    out together, instead of one frame per token.

    The interval adapts: it starts at ``interval_seconds`` and grows by ``growth`` with every frame of a run, up to
    ``max_interval_seconds``. Every frame is an API Gateway message: the first frames of a reply come quickly, where
    a user is watching for the answer to start; once a reply streams steadily, fewer and larger frames read the
    same, at a fraction of the cost. A pause (:meth:`drain`) starts the next run quick again.
    """

    def __init__(
        self,
        *,
        interval_seconds: float,
        max_chars: int,
        max_interval_seconds: float | None = None,
        growth: float = DEFAULT_GROWTH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_seconds < 0:
            raise ValueError("interval_seconds must not be negative")
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        ceiling = interval_seconds if max_interval_seconds is None else max_interval_seconds
        if ceiling < interval_seconds:
            raise ValueError("max_interval_seconds must not be below interval_seconds")
        if growth < 1:
            raise ValueError("growth must be at least 1")
        self._first_interval = interval_seconds
        self._max_interval = ceiling
        self._growth = growth
        self._interval = interval_seconds
        self._max_chars = max_chars
        self._clock = clock
        self._parts: list[str] = []
        self._chars = 0
        #: Whether text of this run has been released (the first text of a run goes out at once).
        self._released = False
        self._released_at = 0.0
        self._waiting_since = 0.0
        #: When the last delta arrived, and the smoothed time between deltas (``None``: not seen yet).
        self._last_delta_at: float | None = None
        self._delta_gap: float | None = None

    def add(self, text: str) -> list[str]:
        """Buffer ``text``; return the chunks to post now (often none)."""
        if not text:
            return []
        now = self._clock()
        self._observe_delta(now)
        if not self._parts:
            self._waiting_since = now
        self._parts.append(text)
        self._chars += len(text)
        if not self._released or self._chars >= self._max_chars:
            return self._flush(now, final=False)
        deadline = self._released_at + self._interval
        next_delta_after = (self._delta_gap or 0.0) * (1 - _DEADLINE_SLACK_OF_GAP)
        due = now >= deadline or now + next_delta_after > deadline
        if due and now - self._waiting_since >= self._first_interval:
            return self._flush(now, final=False)
        return []

    def _observe_delta(self, now: float) -> None:
        if self._last_delta_at is not None:
            gap = now - self._last_delta_at
            smoothed = self._delta_gap
            self._delta_gap = gap if smoothed is None else smoothed + _DELTA_GAP_SMOOTHING * (gap - smoothed)
        self._last_delta_at = now

    @property
    def interval_seconds(self) -> float:
        """How long text waits now before it is released (grows while a run streams)."""
        return self._interval

    def drain(self) -> list[str]:
        """Everything still buffered, as chunks to post now."""
        chunks = self._flush(self._clock(), final=True)
        self._released = False
        self._interval = self._first_interval
        # The pause itself (a tool call) says nothing about how fast the model types.
        self._last_delta_at = None
        return chunks

    def _flush(self, now: float, *, final: bool) -> list[str]:
        text = "".join(self._parts)
        self._parts.clear()
        self._chars = 0
        if not final and text and _is_high_surrogate(text[-1]):
            # The other half of the pair is in the next delta; send them together.
            self._parts.append(text[-1])
            self._chars = 1
            text = text[:-1]
        if self._released and text:
            self._interval = min(self._max_interval, self._interval * self._growth)
        self._released = True
        self._released_at = now
        self._waiting_since = now  # a held-back half of a surrogate pair waits from now
        return split_for_frame(_tidy_surrogates(text), DELTA_TEXT_BUDGET)
