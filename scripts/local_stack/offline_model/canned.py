"""What the offline model writes when no tool is involved: the short reply that reflects the message, the long
one (a story, or an explanation of the round trip) that shows streaming, and the Markdown showcase replies.

Deterministic, as :func:`~scripts.local_stack.offline_model.replies.plan_reply` promises: the same message always
gets the same words.
"""

from __future__ import annotations

import re
import zlib

_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b", re.I)
_TOPIC_AFTER = re.compile(r"\b(?:about|on|of|why|how)\s+(.+)$", re.I | re.S)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
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


def short_reply(message: str, ordinal: int) -> str:
    quoted = clip(message, 200)
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


def long_reply(message: str) -> str:
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
        return _FORMATTING_REPLY.format(topic=f"“{clip(_topic(message), 60)}”")
    return None
