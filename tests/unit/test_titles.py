"""Conversation titles from a first message: Markdown syntax stripped, one line, at most 80 characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.titles import DEFAULT_TITLE, TITLE_CHARS, conversation_title


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("# Plan a **trip** to _Lisbon_", "Plan a trip to Lisbon"),
        ("> quoted [link text](https://example.com) and `code`", "quoted link text and code"),
        ("- [ ] buy milk\n- [x] call mum\n1. first", "buy milk call mum first"),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("![diagram](a.png) ***important*** ~~old~~", "diagram important old"),
        ("---\n## Heading\n***", "Heading"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a b 1 2"),
        ("snake_case_name stays, 2*3*4 too", "snake_case_name stays, 2*3*4 too"),
        ("<b>bold</b> <https://x.org>", "bold https://x.org"),
        ("   \n\t  ", DEFAULT_TITLE),
        ("```\n```", DEFAULT_TITLE),
    ],
)
def test_markdown_is_stripped(message: str, title: str) -> None:
    assert conversation_title(message) == title


def test_a_long_message_is_cut_to_80_characters_with_an_ellipsis() -> None:
    title = conversation_title("**word** " * 100)
    assert len(title) == TITLE_CHARS == 80
    assert title.endswith("…")
    assert "*" not in title


@given(st.text(max_size=3_000))
def test_any_message_gives_one_line_of_at_most_80_characters(message: str) -> None:
    title = conversation_title(message)
    assert 0 < len(title) <= TITLE_CHARS
    assert title == title.strip()
    assert not any(c in title for c in "\n\r\t")
