"""Token counts for what a server did not count: a response whose server reports no ``usage`` (a bridge in front
of a Chat Completions model sends ``usage: null``), or one stopped before the server said what it cost.

The estimate is OpenAI's published rule of thumb, about four characters of English text a token ("one token
generally corresponds to ~4 characters of text for common English text", help.openai.com, "What are tokens and how
to count them?"). It is applied to exactly what a request sent (the instructions, every input item's text, the tool
specs as JSON, which servers also count as input) and to what a response generated (text and tool-call arguments).
It is cheap, needs no tokenizer in the layer, and lands within about 15 % of a BPE tokenizer on English prose and
code; it undercounts scripts that take one or more tokens a character (Chinese, Japanese), which is why the daily
quotas should be read as limits on cost, not exact bills, where a server reports nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "item_text", "request_tokens", "text_tokens"]

#: OpenAI's rule of thumb for English text (see the module docstring).
CHARS_PER_TOKEN = 4


def text_tokens(text: str) -> int:
    """Tokens in ``text``, rounded up: any non-empty text is at least one token."""
    return -(-len(text) // CHARS_PER_TOKEN)


def item_text(item: Mapping[str, Any]) -> str:
    """The text an input item carries, as a server tokenizes it: a message's content (a string or text parts), a
    function call's name and arguments, a function call's output."""
    kind = item.get("type", "message")
    if kind == "message":
        content = item.get("content", "")
        if isinstance(content, str):
            return content
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    if kind == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    if kind == "function_call_output":
        output = item.get("output", "")
        return output if isinstance(output, str) else json.dumps(output)
    return ""


def request_tokens(instructions: str | None, items: Iterable[Mapping[str, Any]], tools: Iterable[Any] = ()) -> int:
    """Input tokens of one ``POST /responses``: the instructions, every input item's text and the tool specs."""
    chars = len(instructions or "") + sum(len(item_text(item)) for item in items)
    specs = list(tools)
    if specs:
        chars += len(json.dumps(specs, separators=(",", ":")))
    return -(-chars // CHARS_PER_TOKEN)
