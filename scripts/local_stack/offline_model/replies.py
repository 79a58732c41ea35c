"""What the offline model says: deterministic replies computed from the conversation, no language model involved.

The replies are made for a demo: they reflect the user's message so a person can see the round trip worked, grow
long when asked for something long (to show streaming), and call the ``current_time`` / ``calculate`` tools when
they are offered and the message asks for the time or for arithmetic (to show the tool loop). "Use the <name> tool
on <text>" calls any offered tool whose name ends with <name> (an MCP server's ``demo__word_count`` for
``word_count``), its arguments filled in from the tool's schema and the text. Given the same context they are
always the same, so tests can assert on them. Asked about WebSockets (one of the page's suggested prompts), or for
Markdown, a list, a table or a code block, they answer in Markdown with all three, so the page's rendering can be
seen (and the README's screenshot taken) offline.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scripts.local_stack.offline_model.attachments import describe_files

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
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b", re.I)
_TOPIC_AFTER = re.compile(r"\b(?:about|on|of|why|how)\s+(.+)$", re.I | re.S)
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
        return TextReply(_long_reply(message))
    return TextReply(_short_reply(message, ordinal))


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
    output = _clip(str(output_item.get("output", "")), 300)
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


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_SHORT_CLOSERS = (
    "Ask me for a long story to watch the streaming, or ask what time it is in Tokyo to see a tool call.",
    "Try asking me to calculate 12 * (3 + 4) to see the tool loop at work.",
    "Connect a real model with OPENAI_API_KEY and the same code will give you real answers.",
)


def _short_reply(message: str, ordinal: int) -> str:
    quoted = _clip(message, 200)
    closer = _SHORT_CLOSERS[zlib.crc32(message.encode()) % len(_SHORT_CLOSERS)]
    if _GREETING.search(message):
        opening = "Hello! I'm the offline demo model, a stand-in that needs no OpenAI key, not a real language model."
    elif message.rstrip().endswith("?"):
        opening = (
            f"Good question: \"{quoted}\" I'm the offline demo model, so I can't really answer it, "
            "but it made the whole trip and this reply is streaming back to you."
        )
    else:
        opening = f'You said: "{quoted}" I\'m the offline demo model, so I just reflect what you send.'
    memory = f" That's your {_ordinal(ordinal)} message in this conversation." if ordinal > 1 else ""
    return f"{opening}{memory} {closer}"


def _topic(message: str) -> str:
    match = _TOPIC_AFTER.search(message)
    topic = match.group(1) if match else message
    topic = topic.strip().rstrip("?.!")
    words = topic.split()
    return " ".join(words[:12]) if words else "your question"


def _long_reply(message: str) -> str:
    topic = _topic(message)
    if re.search(r"\bstory\b", message, re.I):
        paragraphs = [
            f"Once upon a time, in a data centre that hummed like a beehive, there lived a small offline model "
            f"that knew exactly one trick. It could not think, but it could listen, and today someone asked it "
            f"for a story about {topic}. So it cleared its throat, warmed up its token counter, and began.",
            f"The story of {topic} starts quietly, the way the best ones do. Nobody noticed it at first. A message "
            f"arrived over a WebSocket, waited its turn in a first-in-first-out queue, and was picked up by a "
            f"worker that had been sleeping patiently between jobs. The worker read the message twice, decided it "
            f"was a good one, and asked the model to answer it, one token at a time.",
            "Then came the middle, where every story gets complicated. Connections dropped and came back. A "
            "second browser tab opened and wanted to hear the same words. The worker kept its promise to both of "
            "them, sending each delta to every connection of the user, coalescing the small pieces into frames "
            "so the gateway would not be flooded, and never losing track of where it was.",
            "Somewhere along the way a tool was called. The model could not tell the time or do arithmetic on "
            "its own, so it asked, and the worker ran the tool with the user's own settings, never with anything "
            "the model made up, and handed the answer back so the story could go on.",
            f"Near the end, {topic} faced its hardest moment: a crash, right in the middle of a sentence. But the "
            f"reply had been generated on the model's side all along, so when the worker woke up again it simply "
            f"asked for the finished response and carried on, and nobody had to say anything twice.",
            "And that is the end of the story. It was told by the offline demo model, which is not a language "
            "model at all, only a patient machine that strings words together so the rest of the system has "
            "something real to carry. Connect a real model and the stories get much better.",
        ]
    else:
        paragraphs = [
            f"You asked about {topic}, and you asked for something long, so here is a longer answer. First, an "
            f"honest note: I am the offline demo model, which means I do not understand {topic} at all. I produce "
            f"deterministic text so that the whole assistant can be tried on one machine, without an account and "
            f"without a key. What you are reading is real streaming, though, one token at a time.",
            "Here is what happened to your message on its way to me. The browser sent it over a WebSocket to a "
            "gateway that behaves like API Gateway. A small function checked it, recorded it and put it on a FIFO "
            "queue, keyed by your user, so your messages are answered in the order you sent them. A worker then "
            "picked it up, looked up your conversation and asked me for a reply.",
            "While I answer, the worker collects my tokens and sends them on in frames every few dozen "
            "milliseconds, rather than one by one, because every post to a connection has a cost. If you have "
            "two tabs open, both receive the same frames. If one tab closes, the other carries on, and the "
            "closed connection is simply forgotten.",
            f"If something goes wrong in the middle, for example the worker crashes while I am still talking "
            f"about {topic}, the reply is not lost: I keep generating on my side and store the finished "
            f"response, so the worker can fetch it when it retries instead of asking me a second time and "
            f"putting a duplicate turn into your conversation. Errors that cannot be fixed reach you as an "
            f"error frame, and reach an operator as a log line and a metric.",
            "Tools work the same way. When a real model wants the time or a calculation, it asks for a tool "
            "call; the worker runs the tool with the server's own parameters, never letting the model change "
            "whose data it touches, and sends the result back so the model can finish its answer.",
            "That is the long answer. For a real one, point the stack at a real model with an OpenAI key; the "
            "same code path will carry it, and the replies will finally be about what you asked.",
        ]
    return "\n\n".join(paragraphs)


_WEBSOCKETS = re.compile(r"\bweb\s?-?sockets?\b", re.I)
_FORMATTING = re.compile(
    r"\b(markdown|tables?|code\s+(?:blocks?|examples?|snippets?)|bullet(?:ed)?\s+(?:points?|list)|lists?)\b", re.I
)

_WEBSOCKETS_REPLY = """WebSockets in three bullet points:

- **One connection, both ways.** The browser upgrades an HTTP request (`Upgrade: websocket`) to a connection that \
stays open, and either side can send a message at any time.
- **Small frames, no polling.** Each message travels as a frame with a few bytes of header, so the server can push \
a reply piece by piece the moment it has it, instead of waiting to be asked.
- **Stateful, so plan for drops.** Connections close (idle timeouts, restarts, phones changing networks): clients \
reconnect with backoff, and what matters is kept on the server, not in the connection.

A browser client in a few lines:

```javascript
const ws = new WebSocket(`wss://example.com/chat?Auth=${token}`);
ws.onopen = () =>
  ws.send(JSON.stringify({ action: "sendMessage", message: "Hello!" }));
ws.onmessage = (event) => console.log(JSON.parse(event.data));
```

How it compares with polling over HTTP:

| | HTTP polling | WebSocket |
|---|---|---|
| Who starts a message | the client, every time | either side |
| Cost of each message | a request with all its headers | a frame with a few bytes of header |
| Delay of a push | up to the polling interval | as soon as it is sent |

*A canned answer from the offline demo model, written to show lists, code and tables; connect a real model for \
real answers.*"""

_FORMATTING_REPLY = """Here is the Markdown this page renders, with {topic} as the example:

1. A numbered list, with **bold**, *italic* and `inline code`;
2. a bulleted one:
   - nested items,
   - [links](https://commonmark.org/help/);
3. fenced code with a Copy button, and a table.

```python
def summarise(topic: str) -> str:
    \"\"\"A one-line summary, as a real model might write one.\"\"\"
    return f"{{topic}}: explained in three short points."
```

| Element | Markdown | Rendered as |
|---|---|---|
| List | `- item` | a bulleted list |
| Code | three backticks and a language | a code block with Copy |
| Table | pipes and a row of dashes | this table |

*A canned answer from the offline demo model; connect a real model for real answers.*"""


def formatted_reply(message: str) -> str | None:
    """The Markdown demo replies: about WebSockets (a list, a code block, a table, the three bullet points first), or
    for a message asking for Markdown, a list, a table or a code block; ``None`` for any other message."""
    if _WEBSOCKETS.search(message):
        return _WEBSOCKETS_REPLY
    if _FORMATTING.search(message) and not re.search(r"\bstory\b", message, re.I):
        return _FORMATTING_REPLY.format(topic=f"“{_clip(_topic(message), 60)}”")
    return None
