"""Turning a planned reply into the Responses API's event sequence, at the configured pace.

The sequence mirrors OpenAI's: ``response.created`` (and ``response.queued`` for a background response),
``response.in_progress``, for a reasoning request a ``reasoning`` item (added, a silent ``Pace.reasoning_s``, done:
what makes a gpt-5 model look stalled to a client that only watches text), ``response.output_item.added``,
(``response.content_part.added``), one delta per token, the matching ``.done`` events, then exactly one of
``response.completed`` / ``response.incomplete`` / ``response.failed`` / ``error``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from scripts.local_stack.offline_model.attachments import file_tokens
from scripts.local_stack.offline_model.faults import EndingFault, ErrorEventFault, FailedFault
from scripts.local_stack.offline_model.replies import TextReply, ToolCallReply, item_text, split_tokens, usage_tokens
from scripts.local_stack.offline_model.schema import (
    OFFLINE_MODEL_NAME,
    CreateResponse,
    function_call_item,
    message_item,
    new_id,
    output_text_part,
    reasoning_item,
)
from scripts.local_stack.offline_model.store import OfflineModelState, ResponseRun, usage_json

#: Metadata values are limited to 512 characters by the API.
_METADATA_VALUE_LIMIT = 512


class Metronome:
    """When the next token is due: each a fixed interval after the one before was *due*, not after it was sent.

    A sleep always overshoots a little (more on a busy event loop); sleeping the interval after each token would add
    those overshoots up and stream slower than the pace says (about 38 tokens/s for a pace of 40), and a benchmark
    that measures frames against the pace would measure the wrong pace. Late tokens catch up; none comes early. An
    interval changed mid-reply (``POST /_control/pace``) applies from the next token on.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._due_at = clock()

    def wait_s(self, interval_s: float) -> float:
        """Seconds to wait for the next token, ``interval_s`` after the last one was due."""
        self._due_at += interval_s
        return max(0.0, self._due_at - self._clock())


def count_input_tokens(
    instructions: str | None, context: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()
) -> int:
    """Input tokens as a real server counts them: the instructions, every item of the context, and the tool
    definitions (OpenAI bills tool definitions as input tokens: they are part of the prompt the model sees)."""
    specs = usage_tokens(json.dumps(list(tools), separators=(",", ":"))) if tools else 0
    files = sum(file_tokens(item) for item in context if item.get("type") == "message")
    return usage_tokens(instructions or "") + sum(usage_tokens(item_text(item)) for item in context) + specs + files


def new_response(request: CreateResponse, *, reasoning: bool) -> dict[str, Any]:
    """A Response object in its first state (``queued`` in background mode, else ``in_progress``), labelled as
    offline in ``model`` and ``metadata``; the settings it was asked for are echoed with OpenAI's defaults."""
    effort = request.reasoning.effort if request.reasoning else None
    summary = request.reasoning.summary if request.reasoning else None
    metadata = {
        **(request.metadata or {}),
        "offline": "true",
        "requested_model": request.model[:_METADATA_VALUE_LIMIT],
    }
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "queued" if request.background else "in_progress",
        "background": request.background,
        "completed_at": None,
        "conversation": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "metadata": metadata,
        "model": OFFLINE_MODEL_NAME,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        # A reasoning model that was not told an effort uses its default, which OpenAI reports as "medium".
        "reasoning": {"effort": effort or ("medium" if reasoning else None), "summary": summary},
        "service_tier": "default",
        "store": request.store is not False,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.tool_choice or "auto",
        "tools": [tool.to_json() for tool in request.tools],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "user": None,
    }


def is_delta(event: dict[str, Any]) -> bool:
    return event["type"] in ("response.output_text.delta", "response.function_call_arguments.delta")


async def until_finished(run: ResponseRun, generation: Coroutine[Any, Any, None]) -> None:
    """Run ``generation`` (its own task, stopped only by :meth:`ResponseRun.cancel`); however it ends, ``run`` is
    marked finished, so every reader of its events stops waiting."""
    try:
        await generation
    finally:
        run.finish()


async def generate(
    run: ResponseRun,
    *,
    reply: TextReply | ToolCallReply,
    reasoning: bool,
    state: OfflineModelState,
    input_tokens: int,
    max_output_tokens: int | None,
    ending: EndingFault | None,
) -> None:
    """Produce the whole response into ``run`` (run it with :func:`until_finished`)."""
    response = run.response
    run.input_tokens = input_tokens
    run.emit("response.created", response=run.snapshot())
    if response["status"] == "queued":
        run.emit("response.queued", response=run.snapshot())
        response["status"] = "in_progress"
    run.emit("response.in_progress", response=run.snapshot())

    if reasoning:
        thought = reasoning_item()
        response["output"].append(thought)
        run.emit("response.output_item.added", output_index=0, item=thought)
        # Silence, not keep-alives: OpenAI sends nothing while the model thinks, however long that takes.
        await asyncio.sleep(state.pace.reasoning_s)
        run.emit("response.output_item.done", output_index=0, item=thought)

    output_index = len(response["output"])
    if isinstance(reply, TextReply):
        item = message_item("assistant", "", status="in_progress")
        item["content"] = []
        tokens = split_tokens(reply.text)
    else:
        item = function_call_item(new_id("call"), reply.name, "", status="in_progress")
        tokens = split_tokens(reply.arguments)
    response["output"].append(item)
    where = {"item_id": item["id"], "output_index": output_index}
    run.emit("response.output_item.added", output_index=output_index, item=item)
    if isinstance(reply, TextReply):
        part = output_text_part("")
        item["content"].append(part)
        run.emit("response.content_part.added", **where, content_index=0, part=part)

    stop_after = ending.after_deltas if ending is not None else None
    #: Output tokens as usage reports them (and as ``max_output_tokens`` limits them), not streamed words.
    counted = 0
    truncated = False
    await asyncio.sleep(state.pace.first_token_s)
    metronome = Metronome(asyncio.get_running_loop().time)
    for emitted, token in enumerate(tokens):
        if stop_after is not None and emitted >= stop_after:
            break
        if max_output_tokens is not None and counted >= max_output_tokens:
            truncated = True
            break
        if emitted:
            await asyncio.sleep(metronome.wait_s(state.pace.token_interval_s))
        if isinstance(reply, TextReply):
            part["text"] += token
            run.emit("response.output_text.delta", **where, content_index=0, delta=token, logprobs=[])
        else:
            item["arguments"] += token
            run.emit("response.function_call_arguments.delta", **where, delta=token)
        counted += usage_tokens(token)
        run.output_tokens = counted

    if isinstance(ending, ErrorEventFault | FailedFault):
        item["status"] = "incomplete"
        response["status"] = "failed"
        response["error"] = {"code": ending.code, "message": ending.message}
        if isinstance(ending, ErrorEventFault):
            run.emit("error", code=ending.code, message=ending.message, param=None)
        else:
            run.emit("response.failed", response=run.snapshot())
        return

    incomplete_reason = "max_output_tokens" if truncated else ending.reason if ending is not None else None
    item["status"] = "completed" if incomplete_reason is None else "incomplete"
    if isinstance(reply, TextReply):
        run.emit("response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[])
        run.emit("response.content_part.done", **where, content_index=0, part=part)
    else:
        # OpenAI names the function here too (the SDK's type, which predates that, keeps it as an extra field).
        run.emit("response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"])
    run.emit("response.output_item.done", output_index=output_index, item=item)

    response["usage"] = usage_json(input_tokens, counted)
    if incomplete_reason is None:
        response["status"] = "completed"
        response["completed_at"] = int(time.time())
        run.emit("response.completed", response=run.snapshot())
    else:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": incomplete_reason}
        run.emit("response.incomplete", response=run.snapshot())
