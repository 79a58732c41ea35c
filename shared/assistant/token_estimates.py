"""Token counts for what a server did not count: a response whose server reports no ``usage`` (a bridge in front
of a Chat Completions model sends ``usage: null``), or one stopped before the server said what it cost.

The estimate is the mean of the two usual rules of thumb. One is OpenAI's, about four characters a token ("one
token generally corresponds to ~4 characters of text for common English text", help.openai.com, "What are tokens
and how to count them?"); it overcounts prose of long words. The other is one token per word and per run of
punctuation, which is how a BPE tokenizer splits text before it merges anything (tiktoken's pre-tokenization
patterns); it undercounts long words, but it does not undercount what is full of numbers, times and symbols (a
tool's answer, JSON), which the first does by a third. Their mean lands within about 20 % of a BPE tokenizer on
prose, code, tool output and tool specs (tests/unit/test_usage_estimates.py holds it to 25 % of the offline
model's BPE-like counts), needs no tokenizer in the layer, and costs one pass of a regular expression. It is
applied to exactly what a request sent (the instructions, every input item's text, the tool specs as JSON, which
servers also count as input) and to what a response generated (text and tool-call arguments). It undercounts
scripts that take a token or more a character (Chinese, Japanese), which is why a daily quota reads as a limit on
cost, not an exact bill, where a server reports nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "item_text", "request_tokens", "text_tokens"]

#: OpenAI's rule of thumb for English text (see the module docstring).
CHARS_PER_TOKEN = 4


#: Words and runs of punctuation, as a BPE tokenizer splits text before merging (see the module docstring).
_PIECES = re.compile(r"\w+|[^\w\s]+")


def text_tokens(text: str) -> int:
    """Estimated tokens in ``text`` (see the module docstring), rounded up: any non-empty text is at least one."""
    by_length = len(text) / CHARS_PER_TOKEN
    by_pieces = len(_PIECES.findall(text))
    return -(-int(by_length + by_pieces) // 2) if text else 0


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
    texts = [instructions or "", *(item_text(item) for item in items)]
    specs = list(tools)
    if specs:
        texts.append(json.dumps(specs, separators=(",", ":")))
    return sum(text_tokens(text) for text in texts)
