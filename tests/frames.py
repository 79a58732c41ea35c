"""Reply text as a client assembles it from `delta` frames: by `offset`, with the terminal client's own logic."""

from __future__ import annotations

from typing import Any

from scripts.chat.session import Reply


def assemble(frames: list[dict[str, Any]], message_id: str) -> str:
    """The reply text; asserts that every delta carries an offset, seq counts from 0 without gaps, and nothing is
    left waiting behind a gap."""
    deltas = [f for f in frames if f.get("type") == "delta" and f.get("messageId") == message_id]
    seqs = sorted({f["seq"] for f in deltas})
    assert seqs == list(range(len(seqs))), f"seq has gaps: {seqs}"
    assert all(isinstance(f.get("offset"), int) for f in deltas), "every delta says where its text starts"
    reply = Reply(message_id=message_id, own=True)
    text = "".join(reply.place(f["offset"], f["text"]) for f in deltas)
    assert not reply.ahead, f"text missing before offsets {sorted(reply.ahead)}"
    return text
