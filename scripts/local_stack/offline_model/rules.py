"""The refusals of ``POST /v1/responses``: what each profile's real counterpart answers with a 400 or 404.

A fake that accepts what the real server refuses lets a client bug through to production, so the ``openai``
profile refuses what OpenAI refuses, in its words and codes (a client branches on ``error.code``):

- a top-level parameter the API does not have (``unknown_parameter``), the known set read from the installed
  ``openai`` SDK's request type so it follows the SDK rather than a list kept by hand;
- ``temperature`` / ``top_p`` on a reasoning request (``unsupported_parameter``), as the gpt-5 and o-series
  models do;
- a turn that leaves a function call without its output, or an output that answers no call;
- ``previous_response_id`` naming a response that is missing or not finished.

The ``stateless`` profile instead refuses whatever needs server-side state, as vLLM/Ollama/LM Studio/llama.cpp do,
ignores parameters it does not know (those servers do too), ignores ``tool_choice`` as Ollama does (its Responses
API takes ``tools`` but no ``tool_choice``: a model offered tools may call them whatever the client chose), and
refuses ``reasoning`` for a model that does not think, as Ollama does (its server answers 400 with
``"<model>" does not support thinking``: ollama server/routes.go).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from scripts.local_stack.offline_model.schema import ApiError, CreateResponse
from scripts.local_stack.offline_model.store import OfflineModelState

#: Reasoning families by name: the offline model has no model catalogue, and a client that sends ``gpt-5-mini``
#: without ``reasoning`` still gets a reasoning model from OpenAI (``gpt-5-chat-*`` is the non-reasoning one).
_REASONING_MODEL = re.compile(r"^(gpt-5(?!.*-chat)|o\d)", re.I)
#: Sampling parameters a reasoning model refuses.
_SAMPLING_PARAMETERS = ("temperature", "top_p")


@functools.cache
def known_create_parameters() -> frozenset[str]:
    """Every top-level parameter of ``responses.create``, from the SDK's own request type (imported on first use:
    ``import openai`` costs most of a second, which a server that is never sent a request should not pay)."""
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming

    # The streaming variant adds `stream` to the base's keys; TypedDict keeps both sets of names.
    params = ResponseCreateParamsStreaming
    return frozenset(params.__required_keys__ | params.__optional_keys__)


def refuse_unknown_parameters(body: Any) -> None:
    """OpenAI answers an unknown top-level key with 400 ``unknown_parameter`` rather than ignoring it."""
    if not isinstance(body, dict):
        return
    known = known_create_parameters()
    for key in body:
        if key not in known:
            raise ApiError(400, f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


def is_reasoning_request(create: CreateResponse) -> bool:
    """Whether the request goes to a reasoning model: it says so with ``reasoning`` (what the project's client does
    when the assistant sets ``reasoning_effort``), or names a reasoning family. ``effort: "none"`` turns reasoning
    off, as on gpt-5.1 and later."""
    if create.reasoning is not None:
        return create.reasoning.effort != "none"
    return bool(_REASONING_MODEL.match(create.model))


def refuse_sampling_with_reasoning(create: CreateResponse) -> None:
    if not is_reasoning_request(create):
        return
    for name in _SAMPLING_PARAMETERS:
        if getattr(create, name) is not None:
            raise ApiError(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                param=name,
                code="unsupported_parameter",
            )


#: Self-hosted model families that think (and so take ``reasoning``); any other model is refused it.
_THINKING_SELF_HOSTED = re.compile(r"gpt-oss|qwen3|deepseek-r1|magistral", re.I)


def refuse_reasoning_without_thinking(create: CreateResponse) -> None:
    """Ollama refuses ``reasoning`` (its ``think``) for a model that does not think (see the module docstring)."""
    if create.reasoning is not None and not _THINKING_SELF_HOSTED.search(create.model):
        raise ApiError(400, f'"{create.model}" does not support thinking', param="reasoning")


def refuse_state(create: CreateResponse) -> None:
    """A stateless server keeps nothing: refuse what would need it, as the self-hosted servers do."""
    if create.background:
        raise ApiError(400, "Background mode is not supported by this server.", param="background")
    if create.previous_response_id is not None:
        raise ApiError(400, "previous_response_id is not supported by this server.", param="previous_response_id")
    if create.store:
        raise ApiError(400, "Stored responses are not supported by this server.", param="store")


def refuse_conversation(create: CreateResponse) -> None:
    """No profile serves the Conversations API (the conversation is the caller's, sent as input), so a request that
    names a ``conversation`` is refused, in the words the self-hosted servers use."""
    if create.conversation:
        raise ApiError(400, "Conversations are not supported by this server.", param="conversation")


def previous_context(state: OfflineModelState, response_id: str) -> list[dict[str, Any]]:
    """What ``previous_response_id`` continues: that response's context and its output, as on OpenAI. A response
    still queued or in progress has no output to continue yet, and a failed or cancelled one never will."""
    run = state.responses.get(response_id)
    if run is None:
        raise ApiError(404, f"Previous response with id '{response_id}' not found.", param="previous_response_id")
    status = run.response.get("status")
    if status not in ("completed", "incomplete"):
        raise ApiError(
            400,
            f"Previous response with id '{response_id}' cannot be continued: its status is {status}.",
            param="previous_response_id",
        )
    outputs = [copy.deepcopy(item) for item in run.response["output"]]
    return [*run.context, *outputs]


def check_tool_outputs(items: list[dict[str, Any]]) -> None:
    """Refuse, in a turn about to be generated, a tool result that answers no call or a call left without its result:
    both mean the client lost track of its context, and OpenAI refuses both."""
    calls: list[str] = []
    answered: set[str] = set()
    for item in items:
        if item["type"] == "function_call":
            calls.append(item["call_id"])
        elif item["type"] == "function_call_output":
            if item["call_id"] not in calls:
                raise ApiError(
                    400,
                    f"No tool call found for function call output with call_id {item['call_id']}.",
                    param="input",
                )
            answered.add(item["call_id"])
    for call_id in calls:
        if call_id not in answered:
            raise ApiError(400, f"No tool output found for function call {call_id}.", param="input")
