"""A deterministic Chat Completions server: the "model" behind a third-party Responses bridge in tests.

It answers ``POST /v1/chat/completions`` (streamed, as the bridges ask) by rules instead of a model, so a test knows
every byte the bridge was given and can tell what the bridge, and then our client, did with it:

- the last message is a tool result: a text answer that quotes it (:func:`tool_answer`);
- the user asks ``calculate <expression>`` and a ``calculate`` tool is offered (and ``tool_choice`` is not
  ``"none"``): one call of it, arguments streamed in fragments;
- anything else: a text answer that says which user turn this is and quotes the model's previous reply, so a test
  (and a reader of the reply) sees what history arrived (:func:`text_answer`).

Where it matters it is as strict as OpenAI's server: a ``tool`` message must answer a call of the assistant message
before it, and every call must be answered before the conversation goes on (OpenAI answers 400 "messages with role
'tool' must be a response to a preceeding message with 'tool_calls'" and "An assistant message with 'tool_calls'
must be followed by tool messages responding to each 'tool_call_id'"; open-responses-server quotes the first in
``responses_service.validate_message_sequence``). ``usage`` is streamed only when ``stream_options.include_usage``
asks for it, as the ``openai`` SDK's ``ChatCompletionStreamOptionsParam`` documents for OpenAI ("If set, an
additional chunk will be streamed before the ``data: [DONE]`` message ... the ``choices`` field will always be an
empty array"). Unknown request fields are ignored, as vLLM and Ollama do (OpenAI would refuse some of them; the
servers that sit behind such bridges are self-hosted ones). Every chunk it sends is first validated against the
``openai`` SDK's own ``ChatCompletionChunk``, so what the bridge is fed is well-formed by the SDK's definition.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from openai.types.chat import ChatCompletionChunk

MODEL = "deterministic-chat"
API_KEY = "bridge-test-key"
#: The tool the rules call, one of the assistant's built-in tools (assistant.tools.builtin).
TOOL_NAME = "calculate"
TOOL_TRIGGER = "calculate "
_CHARS_PER_TOKEN = 4


@dataclass
class ChatBackendState:
    """What the server was asked: every request's JSON body, in arrival order (rejected ones too)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    #: The text answers it streamed, in order: what the user should see, exactly once each.
    answers: list[str] = field(default_factory=list)
    #: The tool calls it made: ``(call id, name, arguments)``.
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    #: Requests it refused, with the reason it gave.
    refusals: list[str] = field(default_factory=list)

    def reset(self) -> None:
        for recorded in (self.requests, self.answers, self.calls, self.refusals):
            recorded.clear()


class InvalidRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --- The rules ------------------------------------------------------------------------------------------------


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list (``{"type": "text", "text": ...}``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def text_answer(messages: list[dict[str, Any]]) -> str:
    users = [text_of(m.get("content")) for m in messages if m["role"] == "user"]
    earlier = [text_of(m.get("content")) for m in messages if m["role"] == "assistant" and m.get("content")]
    answer = f"Turn {len(users)}: you said {users[-1]!r}."
    if earlier:
        answer += f" Before that I said {earlier[-1]!r}."
    return answer


def tool_answer(result: str) -> str:
    return f"The {TOOL_NAME} tool says {result}."


def words(text: str) -> list[str]:
    """The text in word-sized deltas, each word with the space before it: several chunks, joined back exactly."""
    parts = text.split(" ")
    return [parts[0], *(" " + part for part in parts[1:])]


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / _CHARS_PER_TOKEN))


# --- Validation (as strict as OpenAI where a bridge can get it wrong) -------------------------------------------


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter", "model")
    if body.get("stream") is not True:
        raise InvalidRequest("This backend only streams (the bridges under test always ask it to).", "stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("[] is too short - 'messages'", "messages")
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        }:
            raise InvalidRequest(f"Invalid value for 'role' at messages[{index}].", f"messages.[{index}].role")
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"messages.[{index}].role",
                )
            open_calls.discard(call_id)
            continue
        if open_calls:
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}",
                f"messages.[{index}].role",
            )
        if role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                if not isinstance(call, dict) or not call.get("id") or "function" not in call:
                    raise InvalidRequest("Invalid tool call.", f"messages.[{index}].tool_calls")
                json.loads(call["function"].get("arguments") or "{}")  # arguments are a JSON object's text
                open_calls.add(call["id"])
        elif not isinstance(message.get("content"), str | list):
            raise InvalidRequest(f"Invalid type for 'messages.[{index}].content'.", f"messages.[{index}].content")
    if open_calls:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}",
            "messages",
        )
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise InvalidRequest(f"Invalid tool at tools[{index}].", f"tools[{index}]")
        if not isinstance(function.get("name"), str):
            raise InvalidRequest(f"Missing required parameter: 'tools[{index}].function.name'.", f"tools[{index}]")


# --- The stream ---------------------------------------------------------------------------------------------------


class _Chunks:
    """Chunks of one completion, each checked against the SDK's ``ChatCompletionChunk`` before it goes out."""

    def __init__(self, completion_id: str) -> None:
        self.id = completion_id
        self.created = int(time.time())

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage:
            chunk["usage"] = usage
        ChatCompletionChunk.model_validate(chunk)
        return chunk


def completion_chunks(body: dict[str, Any], state: ChatBackendState, number: int) -> Iterator[dict[str, Any]]:
    """The streamed completion the rules give for ``body`` (already validated)."""
    messages: list[dict[str, Any]] = body["messages"]
    chunks = _Chunks(f"chatcmpl-{number:06d}")
    offered = {tool["function"]["name"] for tool in body.get("tools") or []}
    last = messages[-1]
    last_user = next((text_of(m.get("content")) for m in reversed(messages) if m["role"] == "user"), "")
    generated = ""
    if last["role"] == "tool":
        answer = tool_answer(text_of(last.get("content")))
    elif last_user.startswith(TOOL_TRIGGER) and TOOL_NAME in offered and body.get("tool_choice") != "none":
        answer = None
    else:
        answer = text_answer(messages)
    if answer is None:
        call_id = f"call_{number:06d}"
        arguments = json.dumps({"expression": last_user.removeprefix(TOOL_TRIGGER)})
        state.calls.append((call_id, TOOL_NAME, arguments))
        generated = arguments
        # As OpenAI streams a call: id, type and name with empty arguments first, then the arguments in fragments.
        yield chunks.chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"index": 0, "id": call_id, "type": "function", "function": {"name": TOOL_NAME, "arguments": ""}}
                ],
            }
        )
        for start in range(0, len(arguments), 8):
            fragment = arguments[start : start + 8]
            yield chunks.chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
        yield chunks.chunk({}, "tool_calls")
    else:
        state.answers.append(answer)
        generated = answer
        yield chunks.chunk({"role": "assistant", "content": ""})
        for word in words(answer):
            yield chunks.chunk({"content": word})
        yield chunks.chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt_chars = len(json.dumps(messages)) + len(json.dumps(body.get("tools") or []))
        prompt, completion = _tokens(prompt_chars), _tokens(len(generated))
        yield chunks.chunk(
            {}, usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        )


def create_app(state: ChatBackendState) -> web.Application:
    async def chat_completions(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        number = len(state.requests) + 1
        state.requests.append(body if isinstance(body, dict) else {"invalid": body})
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            state.refusals.append("no or wrong API key")
            return _error(401, "Incorrect API key provided.", None, "invalid_api_key", "authentication_error")
        try:
            validate(body)
        except (InvalidRequest, json.JSONDecodeError) as exc:
            message = exc.message if isinstance(exc, InvalidRequest) else "Invalid tool call arguments."
            param = exc.param if isinstance(exc, InvalidRequest) else None
            state.refusals.append(message)
            return _error(400, message, param, None, "invalid_request_error")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for chunk in completion_chunks(body, state, number):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0)  # one chunk per write, as a model produces them
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


def _error(status: int, message: str, param: str | None, code: str | None, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)


class ChatBackend:
    """The server on its own event loop in a daemon thread, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.state = ChatBackendState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.port = 0

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChatBackend:
        started: Future[int] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="chat-backend", daemon=True)
        self._thread.start()
        self.port = started.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)
        self._thread = None

    def _serve(self, started: Future[int]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main(started))
        finally:
            self._loop.close()

    async def _main(self, started: Future[int]) -> None:
        self._stopped = asyncio.Event()
        runner = web.AppRunner(create_app(self.state), access_log=None, shutdown_timeout=1.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException as exc:
            await runner.cleanup()
            started.set_exception(exc)
            return
        started.set_result(int(runner.addresses[0][1]))
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> ChatBackend:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
