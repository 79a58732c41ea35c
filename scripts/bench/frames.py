"""Frames and bytes on the wire: what the client received, and what one frame per model token would have cost.

The per-token baseline uses the very same envelope (:class:`assistant.protocol.Delta`, serialised as the worker
serialises it) around each token of the same reply, so the comparison isolates coalescing and nothing else.
Sizes count the WebSocket frame header too: API Gateway does not compress, and server-to-client frames are
unmasked, so the header is 2 bytes up to 125 bytes of payload, 4 up to 65 535, and 10 beyond.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from assistant.protocol import Delta
from scripts.bench.markdown import markdown_table, times
from scripts.bench.stats import ratio
from scripts.local_stack.offline_model.replies import split_tokens, usage_tokens

_SHORT_PAYLOAD_MAX = 125
_MEDIUM_PAYLOAD_MAX = 65_535


def websocket_header_bytes(payload_bytes: int) -> int:
    """RFC 6455 header of an unmasked (server-to-client), unfragmented frame."""
    if payload_bytes <= _SHORT_PAYLOAD_MAX:
        return 2
    if payload_bytes <= _MEDIUM_PAYLOAD_MAX:
        return 4
    return 10


@dataclass(frozen=True)
class FrameCount:
    frames: int
    payload_bytes: int
    #: Summed frame by frame (:func:`count_frames`): a header's size depends on its own frame's payload.
    header_bytes: int = 0

    @property
    def wire_bytes(self) -> int:
        return self.payload_bytes + self.header_bytes

    def __add__(self, other: FrameCount) -> FrameCount:
        return FrameCount(
            frames=self.frames + other.frames,
            payload_bytes=self.payload_bytes + other.payload_bytes,
            header_bytes=self.header_bytes + other.header_bytes,
        )


def count_frames(payload_sizes: Iterable[int]) -> FrameCount:
    sizes = list(payload_sizes)
    return FrameCount(
        frames=len(sizes), payload_bytes=sum(sizes), header_bytes=sum(websocket_header_bytes(s) for s in sizes)
    )


def per_token_baseline(message_id: str, tokens: Sequence[str]) -> FrameCount:
    """One ``delta`` frame per model token, in the same envelope the worker uses."""
    sizes = [
        len(Delta(message_id=message_id, seq=seq, text=token).to_json().encode("utf-8"))
        for seq, token in enumerate(tokens)
    ]
    return count_frames(sizes)


def model_tokens(reply_text: str) -> list[str]:
    """The tokens the offline model streamed for ``reply_text`` (it emits exactly these, one delta each)."""
    return split_tokens(reply_text)


def reported_output_tokens(reply_text: str) -> int:
    """The ``outputTokens`` the offline model reports for ``reply_text``: each streamed token counted as its usage
    counts text (``usage_tokens``, about four characters a token), which is more than the streamed tokens."""
    return sum(usage_tokens(token) for token in model_tokens(reply_text))


@dataclass(frozen=True)
class FrameComparison:
    """Coalesced frames against one frame per token, over the same replies."""

    tokens: int
    coalesced: FrameCount
    per_token: FrameCount

    def frames_per_1000_tokens(self) -> tuple[float, float]:
        return 1000 * self.coalesced.frames / self.tokens, 1000 * self.per_token.frames / self.tokens

    def frame_ratio(self) -> float:
        return ratio(self.coalesced.frames, self.per_token.frames)

    def wire_byte_ratio(self) -> float:
        return ratio(self.coalesced.wire_bytes, self.per_token.wire_bytes)


def compare(replies: Iterable[tuple[str, str, Sequence[int]]]) -> FrameComparison:
    """``replies`` are ``(message_id, reply_text, payload sizes of the delta frames received)``."""
    tokens = 0
    coalesced = FrameCount(0, 0)
    per_token = FrameCount(0, 0)
    for message_id, text, sizes in replies:
        reply_tokens = model_tokens(text)
        tokens += len(reply_tokens)
        coalesced += count_frames(sizes)
        per_token += per_token_baseline(message_id, reply_tokens)
    if tokens == 0:
        raise ValueError("no tokens in the replies")
    return FrameComparison(tokens=tokens, coalesced=coalesced, per_token=per_token)


def frames_section(frames: FrameComparison) -> list[str]:
    coalesced_per_1000, per_token_per_1000 = frames.frames_per_1000_tokens()
    rows = [
        [
            "one frame per token (baseline)",
            f"{per_token_per_1000:,.0f}",
            str(frames.per_token.frames),
            f"{frames.per_token.wire_bytes:,}",
            f"{1000 * frames.per_token.wire_bytes / frames.tokens:,.0f}",
            "1.00x",
        ],
        [
            "coalesced frames as received",
            f"{coalesced_per_1000:,.0f}",
            str(frames.coalesced.frames),
            f"{frames.coalesced.wire_bytes:,}",
            f"{1000 * frames.coalesced.wire_bytes / frames.tokens:,.0f}",
            f"{times(frames.frame_ratio())} frames, {times(frames.wire_byte_ratio())} bytes",
        ],
    ]
    headers = ["delta frames", "frames / 1000 tokens", "frames", "bytes on the wire", "bytes / 1000 tokens", "ratio"]
    return [
        "## Frames and bytes per reply",
        "",
        f"Over the same {frames.tokens:,} output tokens (the replies of the latency run). Bytes include the "
        "WebSocket frame header (API Gateway does not compress); the baseline wraps each token in the same "
        "`delta` envelope the worker uses.",
        "",
        markdown_table(headers, rows),
        "",
        f"Every `PostToConnection` is an API Gateway request: **{times(ratio(1, frames.frame_ratio()))} fewer** "
        "requests than one per token (checkpoint writes and what both cost: the next section).",
        "",
    ]
