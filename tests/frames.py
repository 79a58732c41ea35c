"""Reply text as a client assembles it from `delta` frames: by `offset`, with the terminal client's own logic."""

from __future__ import annotations

from typing import Any

from scripts.chat.session import Reply


def assemble(frames: list[dict[str, Any]], message_id: str) -> str:
    """The reply text, in frame order; a ``reset`` frame voids the text from its offset on (docs/protocol.md).

    Asserts that every delta carries an offset, that ``seq`` counts from 0 without gaps (again after each reset),
    and that nothing is left waiting behind a gap."""
    reply = Reply(message_id=message_id, own=True)
    seqs: list[int] = []
    for frame in frames:
        if frame.get("messageId") != message_id:
            continue
        if frame.get("type") == "reset":
            _assert_counted_from_zero(seqs)
            seqs = []
            reply.reset(frame["offset"])
        elif frame.get("type") == "delta":
            assert isinstance(frame.get("offset"), int), "every delta says where its text starts"
            seqs.append(frame["seq"])
            reply.parts.append(reply.place(frame["offset"], frame["text"]))
    _assert_counted_from_zero(seqs)
    assert not reply.ahead, f"text missing before offsets {sorted(reply.ahead)}"
    return reply.text


def _assert_counted_from_zero(seqs: list[int]) -> None:
    distinct = sorted(set(seqs))
    assert distinct == list(range(len(distinct))), f"seq has gaps: {distinct}"
