"""Token counts for what a server did not count: a response whose server reports no ``usage`` (a bridge in front
of a Chat Completions model sends ``usage: null``), or one stopped before the server said what it cost.

The estimate is the mean of the two usual rules of thumb. One is OpenAI's, about four characters a token ("one
token generally corresponds to ~4 characters of text for common English text", help.openai.com, "What are tokens
and how to count them?"); it overcounts prose of long words. The other is one token per word and per run of
punctuation, which is how a BPE tokenizer splits text before it merges anything (tiktoken's pre-tokenization
patterns); it undercounts long words, but it does not undercount what is full of numbers, times and symbols (a
tool's answer, JSON), which the first badly undercounts. Their mean stays close to a BPE tokenizer on prose, code,
tool output and tool specs (tests/unit/test_usage_estimates.py holds it to a bound of the offline model's BPE-like
counts), needs no tokenizer in the layer, and costs one pass of a regular expression. It is
applied to exactly what a request sent (the instructions, every input item's text, the tool specs as JSON, which
servers also count as input) and to what a response generated (text and tool-call arguments). It undercounts
scripts that take a token or more a character (Chinese, Japanese), which is why a daily quota reads as a limit on
cost, not an exact bill, where a server reports nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "PDF_PAGE_TOKENS",
    "attachment_tokens",
    "item_text",
    "request_tokens",
    "text_tokens",
]

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


#: An image as OpenAI counts one at high detail: 85 base tokens and 170 per 512-pixel tile, a 1024x1024 image being
#: four tiles (765 tokens; OpenAI's "Images and vision" guide, "Calculating costs"). Without decoding the image the
#: estimate assumes that size: a screenshot is usually larger and scaled down to it.
IMAGE_TOKENS = 85 + 170 * 4
#: A PDF page: OpenAI sends a model "both the extracted text and an image of each page" (its "File inputs" guide), so
#: a page costs about an image plus a page of text.
PDF_PAGE_TOKENS = IMAGE_TOKENS + 500
#: ``/Type /Page`` objects (not ``/Pages``): one per page of an uncompressed page tree.
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def attachment_tokens(content_type: str, data: bytes | None = None) -> int:
    """Estimated input tokens of one attachment (an image: :data:`IMAGE_TOKENS`; a PDF: per page, its pages counted
    where ``data`` is given and its page objects are readable, else as one page per 3 KB)."""
    if content_type != "application/pdf":
        return IMAGE_TOKENS
    pages = len(_PDF_PAGE.findall(data)) if data else 0
    if not pages and data:
        pages = max(1, len(data) // 3000)
    return max(1, pages) * PDF_PAGE_TOKENS


def part_tokens(part: Mapping[str, Any]) -> int:
    """Estimated tokens of a message's content part that is not text (an ``input_image`` or ``input_file``)."""
    kind = part.get("type")
    if kind == "input_image":
        return IMAGE_TOKENS
    if kind == "input_file":
        data = str(part.get("file_data", ""))
        if data.startswith("data:") and "," in data:
            return attachment_tokens("application/pdf", base64.b64decode(data.split(",", 1)[1]))
        return PDF_PAGE_TOKENS
    return 0


def _file_tokens(item: Mapping[str, Any]) -> int:
    content = item.get("content")
    if item.get("type", "message") != "message" or isinstance(content, str) or not content:
        return 0
    return sum(part_tokens(part) for part in content if isinstance(part, Mapping))


def request_tokens(instructions: str | None, items: Iterable[Mapping[str, Any]], tools: Iterable[Any] = ()) -> int:
    """Input tokens of one ``POST /responses``: the instructions, every input item's text and files, the tool
    specs."""
    listed = list(items)
    texts = [instructions or "", *(item_text(item) for item in listed)]
    specs = list(tools)
    if specs:
        texts.append(json.dumps(specs, separators=(",", ":")))
    return sum(text_tokens(text) for text in texts) + sum(_file_tokens(item) for item in listed)
