"""What the offline model says: deterministic replies computed from the conversation, no language model involved.

The replies are made for a demo: they reflect the user's message so a person can see the round trip worked, grow
long when asked for something long (to show streaming), and call the ``current_time`` / ``calculate`` tools when
they are offered and the message asks for the time or for arithmetic (to show the tool loop). "Use the <name> tool
on <text>" calls any offered tool whose name ends with <name> (an MCP server's ``demo__word_count`` for
``word_count``), its arguments filled in from the tool's schema and the text. Given the same context they are
always the same, so tests can assert on them. Asked about WebSockets (one of the page's suggested prompts), or for
Markdown, a list, a table or a code block, they answer in Markdown with all three, so the page's rendering can be
seen (and the README's screenshot taken) offline. This module decides which reply; the prose of the ones without
a tool is in :mod:`.canned`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scripts.local_stack.offline_model.attachments import describe_files
from scripts.local_stack.offline_model.canned import clip, formatted_reply, long_reply, short_reply

_TOKEN = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Tokens as this model counts them: each word with the whitespace before it."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


#: How real models count usage: pre-tokenisation as OpenAI's BPE tokenizers do it (tiktoken's patterns: letters with
#: their leading space, up to three digits, runs of punctuation, whitespace), and a word longer than ten letters
#: split as a BPE vocabulary splits a rarer word. That comes to about four characters a token on English prose and
#: code (3.9-4.6 on this project's own texts), as OpenAI says of its models, where the streamed words above run at
#: about six: counting usage in streamed words would make every estimate of ours look 40 % too high.
_USAGE_PIECE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+(?!\S)|\s+")
_LETTERS_PER_PIECE = 10


def usage_tokens(text: str) -> int:
    """Tokens of ``text`` as this model reports them in ``usage`` (see :data:`_USAGE_PIECE`)."""
    count = 0
    for piece in _USAGE_PIECE.findall(text):
        word = piece.strip()
        count += -(-len(word) // _LETTERS_PER_PIECE) if word.isalpha() else 1
    return count


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    #: JSON object text, as the ``arguments`` of a ``function_call`` item.
    arguments: str


Reply = TextReply | ToolCallReply

TIME_TOOL = "current_time"
CALC_TOOL = "calculate"

_CITY_ZONES: Mapping[str, str] = {
    "tokyo": "Asia/Tokyo",
    "osaka": "Asia/Tokyo",
    "london": "Europe/London",
    "paris": "Europe/Paris",
    "berlin": "Europe/Berlin",
    "madrid": "Europe/Madrid",
    "rome": "Europe/Rome",
    "moscow": "Europe/Moscow",
    "new york": "America/New_York",
    "nyc": "America/New_York",
    "chicago": "America/Chicago",
    "denver": "America/Denver",
    "los angeles": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "sao paulo": "America/Sao_Paulo",
    "são paulo": "America/Sao_Paulo",
    "sydney": "Australia/Sydney",
    "singapore": "Asia/Singapore",
    "hong kong": "Asia/Hong_Kong",
    "dubai": "Asia/Dubai",
    "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "utc": "UTC",
}
_TIME_QUESTION = re.compile(r"\b(what\s+time|time\s+is\s+it|current\s+time|(what's|what\s+is)\s+the\s+time)\b", re.I)
_IANA_ZONE = re.compile(r"\b[A-Z][A-Za-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?\b")
_CALC_REQUEST = re.compile(r"\b(calculate|compute|evaluate|solve|what's|what\s+is|how\s+much\s+is)\b", re.I)
_EXPRESSION_RUN = re.compile(r"[0-9.+\-*/%^()\s]+")
_HAS_OPERATION = re.compile(r"[\d)]\s*[-+*/%^]\s*[(\-]*\s*[\d.]")
_LONG_REQUEST = re.compile(r"\b(long|story|essay|explain)", re.I)
#: "use the word_count tool on: some text", "call `lookup_order` tool for A-1001".
_USE_TOOL = re.compile(
    r"\b(?:use|call|run|try)\s+(?:the\s+)?[`'\"]?([A-Za-z0-9_.-]+)[`'\"]?\s+tool\b"
    r"(?:\s*(?:on|with|for|about)\b)?\s*:?\s*(.*)$",
    re.I | re.S,
)
#: "call lookup_order for A-1001": the same without the word "tool", taken only when such a tool is offered.
_USE_NAME = re.compile(
    r"\b(?:use|call|run)\s+(?:the\s+)?[`'\"]?([A-Za-z0-9_.-]{3,})[`'\"]?(?:\s*(?:on|with|for|about)\b)?\s*:?\s*(.*)$",
    re.I | re.S,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def plan_reply(context: Sequence[Mapping[str, Any]], tool_names: Collection[str]) -> Reply:
    """The reply to the newest item of ``context`` (conversation items plus the request's input, oldest first).

    ``tool_names`` are the offered tools; a mapping from each name to its ``parameters`` schema lets the model
    fill in the arguments of any tool it is asked to use by name (see :func:`named_tool_call`).
    """
    if context and context[-1].get("type") == "function_call_output":
        return TextReply(_tool_result_reply(context, context[-1]))
    newest = next((item for item in reversed(context) if _is_user_message(item)), None)
    received = describe_files(newest) if newest is not None else None
    if received is not None:
        return TextReply(received)
    message = last_user_text(context)
    if message is None:
        return TextReply("I'm the offline demo model. Send me a message and I'll answer it.")
    schemas: Mapping[str, Any] = tool_names if isinstance(tool_names, Mapping) else {}
    named = _USE_TOOL.search(message)
    if named:
        return named_tool_call(named.group(1), _argument_text(named.group(2)), tool_names, schemas)
    loosely = _USE_NAME.search(message)
    if loosely and any(name.endswith(loosely.group(1)) for name in tool_names):
        return named_tool_call(loosely.group(1), _argument_text(loosely.group(2)), tool_names, schemas)
    if _TIME_QUESTION.search(message):
        if TIME_TOOL in tool_names:
            return ToolCallReply(TIME_TOOL, json.dumps({"timezone": timezone_for(message)}))
        return TextReply("I'd need the current_time tool to tell the time, and it isn't enabled here.")
    expression = extract_expression(message) if _CALC_REQUEST.search(message) else None
    if expression is not None and CALC_TOOL in tool_names:
        return ToolCallReply(CALC_TOOL, json.dumps({"expression": expression}))
    ordinal = sum(1 for item in context if _is_user_message(item))
    canned = formatted_reply(message)
    if canned is not None:
        return TextReply(canned)
    if _LONG_REQUEST.search(message):
        return TextReply(long_reply(message))
    return TextReply(short_reply(message, ordinal))


def _argument_text(text: str) -> str:
    # The sentence's closing punctuation and quotes are not part of the argument ("for 'A-1001'.").
    return text.strip().rstrip(".!?").strip().strip("\"'`")


def named_tool_call(requested: str, text: str, tool_names: Collection[str], schemas: Mapping[str, Any]) -> Reply:
    """A call to the offered tool called ``requested`` or, failing that, one whose name ends with it (MCP tools are
    offered as ``<server>__<tool>``); its arguments from the tool's schema and ``text``."""
    ends_with = sorted(name for name in tool_names if name.endswith(requested))
    name = requested if requested in tool_names else (ends_with[0] if ends_with else None)
    if name is None:
        offered = ", ".join(sorted(tool_names)) or "none"
        return TextReply(f"I can't use a {requested} tool: it isn't offered here. The tools I have: {offered}.")
    schema = schemas.get(name)
    return ToolCallReply(name, json.dumps(fill_arguments(schema if isinstance(schema, Mapping) else None, text)))


def fill_arguments(schema: Mapping[str, Any] | None, text: str) -> dict[str, Any]:
    """Arguments for a tool from the user's text: every string parameter gets the text, a number the first number
    in it, a boolean ``true``; optional parameters are left out (the tool's default applies)."""
    properties = (schema or {}).get("properties") or {}
    required = set((schema or {}).get("required", properties))
    number = _NUMBER.search(text)
    arguments: dict[str, Any] = {}
    for name, prop in properties.items():
        if name not in required:
            continue
        kind = _json_type(prop)
        if kind == "string":
            arguments[name] = text
        elif kind == "integer":
            arguments[name] = int(float(number.group(0))) if number else 0
        elif kind == "number":
            arguments[name] = float(number.group(0)) if number else 0
        elif kind == "boolean":
            arguments[name] = True
        elif kind == "array":
            arguments[name] = []
        else:
            arguments[name] = None
    return arguments


def _json_type(prop: Any) -> str | None:
    """The first non-null type a property schema allows (``type`` may be a list; ``anyOf`` a list of schemas)."""
    if not isinstance(prop, Mapping):
        return None
    kind = prop.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    kinds += [_json_type(option) for option in prop.get("anyOf", [])]
    return next((k for k in kinds if isinstance(k, str) and k != "null"), None)


def last_user_text(context: Sequence[Mapping[str, Any]]) -> str | None:
    for item in reversed(context):
        if _is_user_message(item):
            return item_text(item)
    return None


def item_text(item: Mapping[str, Any]) -> str:
    """The text of a stored item, for replies and for counting input tokens."""
    kind = item.get("type")
    if kind == "message":
        return "".join(str(part.get("text", "")) for part in item.get("content", []))
    if kind == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    if kind == "function_call_output":
        return str(item.get("output", ""))
    return ""


def timezone_for(message: str) -> str:
    """The IANA zone a time question is about: an explicit zone name, a known city, else UTC."""
    explicit = _IANA_ZONE.search(message)
    if explicit:
        return explicit.group(0)
    lowered = message.lower()
    for city, zone in _CITY_ZONES.items():
        if re.search(rf"\b{re.escape(city)}\b", lowered):
            return zone
    return "UTC"


def extract_expression(message: str) -> str | None:
    """The longest arithmetic expression in the message, e.g. ``12 * (3 + 4)``, or ``None``."""
    normalised = message.replace("\u00d7", "*").replace("\u00f7", "/")
    candidates = [run.strip() for run in _EXPRESSION_RUN.findall(normalised)]
    candidates = [_balance(c) for c in candidates if _HAS_OPERATION.search(c)]
    candidates = [c for c in candidates if c and _HAS_OPERATION.search(c)]
    return max(candidates, key=len) if candidates else None


def _balance(expression: str) -> str:
    # A run can catch a parenthesis that belongs to the sentence ("(say, 2+2)"); drop unmatched ones at the ends.
    while expression.startswith("(") and expression.count("(") > expression.count(")"):
        expression = expression[1:].strip()
    while expression.endswith(")") and expression.count(")") > expression.count("("):
        expression = expression[:-1].strip()
    return expression.strip(" .")


def _is_user_message(item: Mapping[str, Any]) -> bool:
    return item.get("type") == "message" and item.get("role") == "user"


def _tool_result_reply(context: Sequence[Mapping[str, Any]], output_item: Mapping[str, Any]) -> str:
    call = next(
        (
            item
            for item in reversed(context)
            if item.get("type") == "function_call" and item.get("call_id") == output_item.get("call_id")
        ),
        None,
    )
    output = clip(str(output_item.get("output", "")), 300)
    name = str(call.get("name", "")) if call else "tool"
    try:
        arguments = json.loads(str(call.get("arguments", "{}"))) if call else {}
    except json.JSONDecodeError:
        arguments = {}
    problem = _reported_error(output)
    if problem is not None:
        return f"The {name} tool couldn't help this time: {problem}"
    if name == TIME_TOOL:
        zone = arguments.get("timezone", "UTC") if isinstance(arguments, dict) else "UTC"
        return f"According to the {TIME_TOOL} tool, it is {_readable_time(output)} in {zone}."
    if name == CALC_TOOL:
        expression = arguments.get("expression", "that") if isinstance(arguments, dict) else "that"
        return f"{expression} = {output}. (The {CALC_TOOL} tool did the arithmetic; I only asked it.)"
    return f"The {name} tool returned: {output}"


def _readable_time(output: str) -> str:
    """``{"datetime": "2026-11-25T08:59:34+09:00", "weekday": "Wednesday", ...}`` as
    "08:59 (UTC+09:00) on Wednesday, 2026-11-25"; the raw output when it has another shape."""
    try:
        fields = json.loads(output)
        date, clock = str(fields["datetime"]).split("T", 1)
        return f"{clock[:5]} (UTC{clock[8:]}) on {fields['weekday']}, {date}"
    except (ValueError, KeyError, TypeError):
        return output


def _reported_error(output: str) -> str | None:
    try:
        parsed = json.loads(output)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and parsed.get("error"):
        return str(parsed["error"])
    return None
