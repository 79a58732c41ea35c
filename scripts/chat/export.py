"""A conversation as Markdown, from its ``history`` pages: what ``/export FILE`` writes (the page builds the same)."""

from __future__ import annotations

from collections.abc import Iterable

from scripts.chat.events import HistoryMessage

_STOPPED = {"cancelled": "*(stopped)*", "failed": "*(failed)*"}


def conversation_markdown(title: str, conversation_id: str, messages: Iterable[HistoryMessage]) -> str:
    """``messages`` oldest first. The texts are written as they are (they are Markdown already); each turn is a
    "You" and an "Assistant" section, a stopped or failed reply marked so."""
    lines = [f"# {title}", "", f"Conversation `{conversation_id}`", ""]
    for message in messages:
        lines.append("## You" if message.role == "user" else "## Assistant")
        lines.append("")
        lines.append(message.text.rstrip() or "*(no text)*")
        marker = _STOPPED.get(message.status or "")
        if message.role == "assistant" and marker:
            lines.extend(["", marker])
        lines.append("")
    return "\n".join(lines)
