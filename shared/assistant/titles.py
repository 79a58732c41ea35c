"""A conversation's title from its first message: the message's text without Markdown syntax, on one line."""

from __future__ import annotations

import re
from typing import Final

#: What a conversation is called before its first message (and what a message with no readable text gives).
DEFAULT_TITLE: Final = "New conversation"
#: What a list shows of a first message.
TITLE_CHARS: Final = 80
#: Only the start of a message can end up in a title; longer text is not scanned.
_SCANNED_CHARS: Final = 2_000

_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_LINE_PREFIX = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?:\[[ xX]\]\s+)?|\d{1,9}[.)]\s+)+", re.MULTILINE)
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
# Delimiters only where they start and end a word: `snake_case` and `2*3*4` are text, not emphasis.
_EMPHASIS = re.compile(r"(?<![\w*_~`])(\*\*|__|\*|_|~~|`+)(?=\S)(.+?)(?<=\S)\1(?![\w*_~`])")
_TABLE_PIPES = re.compile(r"^\s*\|?\s*:?-{3,}.*$|\|", re.MULTILINE)


def strip_markdown(text: str) -> str:
    """The readable text of Markdown: headings, quotes, list markers, rules, fences, emphasis, code ticks, links
    and images reduced to their text. Meant for a title, not for rendering: anything unusual is left as typed."""
    text = _FENCE.sub("", text)
    text = _RULE.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _LINE_PREFIX.sub("", text)
    for _ in range(3):  # nested emphasis (***bold italic***, **`code`**)
        text = _EMPHASIS.sub(r"\2", text)
    return _TABLE_PIPES.sub(" ", text)


def conversation_title(text: str) -> str:
    """At most :data:`TITLE_CHARS` characters of ``text`` with Markdown stripped and whitespace collapsed (an
    ellipsis marks a cut); the default title when nothing readable is left."""
    line = " ".join(strip_markdown(text[:_SCANNED_CHARS]).split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
