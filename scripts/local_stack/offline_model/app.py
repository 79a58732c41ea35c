"""The offline model's HTTP surface: an aiohttp app speaking enough of the Responses API.

``/v1/...`` is what the ``openai`` SDK calls (any bearer token is accepted, a missing one is refused as OpenAI
would). As on OpenAI, a response created with ``background: true`` generates server-side whatever happens to its
connection and is stopped with ``POST /v1/responses/{id}/cancel``; any other response is cancelled the moment its
client disconnects (status ``cancelled``). ``/_control/...`` lets a test in another process script faults, change
the pace and read the recorded requests. It serves no Conversations API: the conversation is the caller's (it sends
the earlier turns as input), so a request naming a ``conversation`` is refused with 400 in every profile.

The ``openai`` profile refuses what OpenAI refuses (:mod:`.rules`): unknown parameters, sampling parameters on a
reasoning request, unanswered tool calls. The ``stateless`` profile
(:data:`~scripts.local_stack.offline_model.store.Profile`) answers like the self-hosted servers: only
``POST /v1/responses``, every other ``/v1`` path is 404, and a request that relies on server-side state
(``background``, ``previous_response_id``, ``store: true``) is refused with 400. The reply is planned from the
``input`` items alone, so the conversation is whatever the client sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from scripts.local_stack.offline_model.faults import (
    CutFault,
    ErrorEventFault,
    FailedFault,
    Fault,
    IncompleteFault,
    PaceUpdate,
    StallFault,
    StatusFault,
)
from scripts.local_stack.offline_model.generation import (
    count_input_tokens,
    generate,
    is_delta,
    new_response,
    until_finished,
)
from scripts.local_stack.offline_model.replies import plan_reply
from scripts.local_stack.offline_model.rules import (
    check_tool_outputs,
    is_reasoning_request,
    previous_context,
    refuse_conversation,
    refuse_reasoning_without_thinking,
    refuse_sampling_with_reasoning,
    refuse_state,
    refuse_unknown_parameters,
)
from scripts.local_stack.offline_model.schema import ApiError, CreateResponse, parse_body, stored_items
from scripts.local_stack.offline_model.store import OfflineModelState, RecordedRequest, ResponseRun

logger = logging.getLogger(__name__)

STATE_KEY = web.AppKey("offline_model_state", OfflineModelState)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: OpenAI's ``error.type`` for the statuses a status fault may script.
_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
#: How often a response without background mode checks that its client is still connected.
_DISCONNECT_POLL_S = 0.02


def create_app(state: OfflineModelState | None = None) -> web.Application:
    """The app; pass ``state`` to keep a handle on it (faults, pace, recorded requests, stored responses)."""
    app = web.Application(middlewares=[_api_middleware])
    app[STATE_KEY] = state or OfflineModelState()
    app.router.add_post("/v1/responses", _create_response)
    app.router.add_get("/v1/responses/{response_id}", _get_response)
    app.router.add_post("/v1/responses/{response_id}/cancel", _cancel_response)
    app.router.add_get("/_control/faults", _get_faults)
    app.router.add_post("/_control/faults", _push_faults)
    app.router.add_delete("/_control/faults", _clear_faults)
    app.router.add_get("/_control/pace", _get_pace)
    app.router.add_post("/_control/pace", _set_pace)
    app.router.add_get("/_control/requests", _get_requests)
    app.router.add_delete("/_control/requests", _clear_requests)
    app.on_shutdown.append(_stop_generations)
    return app


async def _stop_generations(app: web.Application) -> None:
    await app[STATE_KEY].cancel_tasks()


@web.middleware
async def _api_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Records ``/v1`` calls, checks for a bearer token and renders :class:`ApiError` as OpenAI does."""
    try:
        if request.path.startswith("/v1/"):
            state = request.app[STATE_KEY]
            body = await _json_body(request)
            state.requests.append(RecordedRequest(request.method, request.path_qs, body))
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                raise ApiError(401, "You didn't provide an API key.", code="invalid_api_key")
            if state.profile == "stateless" and not (request.method == "POST" and request.path == "/v1/responses"):
                raise ApiError(404, f"{request.method} {request.path} is not served by a stateless server.")
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)


async def _json_body(request: web.Request) -> Any:
    if not request.body_exists:
        return None
    text = await request.text()  # aiohttp keeps the bytes, so the middleware and the handler may both read
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None


def _state(request: web.Request) -> OfflineModelState:
    return request.app[STATE_KEY]


# --- Responses --------------------------------------------------------------------------------------------------


async def _create_response(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    fault = state.faults.pop()
    if isinstance(fault, StatusFault):
        raise _status_error(fault)
    if isinstance(fault, StallFault):
        await asyncio.sleep(fault.seconds)
        if _client_gone(request):
            # The client gave up before anything was created, as if the request never reached the model.
            logger.info("stalled request abandoned by its client; no response created")
            return web.Response(status=499)

    body = await _json_body(request)
    if state.profile == "openai":
        refuse_unknown_parameters(body)
    create = parse_body(CreateResponse, body)
    if state.profile == "stateless":
        refuse_state(create)
        refuse_reasoning_without_thinking(create)
    else:
        refuse_sampling_with_reasoning(create)
    refuse_conversation(create)
    if create.background and create.store is False:
        raise ApiError(400, "Background mode requires store=true.", param="background")
    earlier = previous_context(state, create.previous_response_id) if create.previous_response_id else []
    context = [*earlier, *stored_items(create.input)]
    check_tool_outputs(context)

    reasoning = is_reasoning_request(create)
    run = ResponseRun(new_response(create, reasoning=reasoning))
    run.context = context
    if state.profile != "stateless" and create.store is not False:
        state.responses[run.id] = run
    ending = fault if isinstance(fault, ErrorEventFault | FailedFault | IncompleteFault) else None
    run.task = state.spawn(
        until_finished(
            run,
            generate(
                run,
                reply=plan_reply(context, _offered_tools(create, honour_tool_choice=state.profile != "stateless")),
                reasoning=reasoning,
                state=state,
                input_tokens=count_input_tokens(
                    create.instructions, context, [tool.to_json() for tool in create.tools]
                ),
                max_output_tokens=create.max_output_tokens,
                ending=ending,
            ),
        ),
        name=f"generate {run.id}",
    )
    cut_after = fault.after_deltas if isinstance(fault, CutFault) else None
    if create.background:
        return await _answer(request, run, create, cut_after, ending)
    # Without background mode the response lives only as long as its connection, as on OpenAI ("the model
    # generates only when there is a connection to consume events"): when the client leaves, generation stops.
    watcher = asyncio.get_running_loop().create_task(_cancel_when_client_leaves(request, run))
    try:
        return await _answer(request, run, create, cut_after, ending)
    finally:
        watcher.cancel()
        if _client_gone(request) and run.cancel():
            logger.info("client of %s left; the response (not in background mode) is cancelled", run.id)


async def _answer(
    request: web.Request, run: ResponseRun, create: CreateResponse, cut_after: int | None, ending: Any
) -> web.StreamResponse:
    if create.stream:
        return await _stream(request, run, cut_after)
    if cut_after is not None:
        _drop_connection(request)
        return web.Response(status=499)
    if create.background:
        # Answered at once, still queued; the client polls (or re-streams) it by id.
        return web.json_response(run.snapshot())
    await run.wait_finished()
    if isinstance(ending, ErrorEventFault):
        raise ApiError(500, ending.message, type_="server_error", code=ending.code)
    return web.json_response(run.response)


async def _cancel_when_client_leaves(request: web.Request, run: ResponseRun) -> None:
    # aiohttp has no disconnect callback for a handler, and a stream waiting for the first token writes nothing
    # that could fail, so look.
    while not run.finished:
        if _client_gone(request):
            if run.cancel():
                logger.info("client of %s left; the response (not in background mode) is cancelled", run.id)
            return
        await asyncio.sleep(_DISCONNECT_POLL_S)


async def _stream(
    request: web.Request, run: ResponseRun, cut_after: int | None, *, starting_after: int = -1
) -> web.StreamResponse:
    """Relay the run's events as SSE; stop relaying if the client leaves or a cut is scripted (whether generation
    stops too is the caller's business: it does unless the response is in background mode)."""
    stream = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    deltas = 0
    try:
        await stream.prepare(request)
        async for event in run.follow():
            if event["sequence_number"] <= starting_after:
                continue
            if is_delta(event):
                if deltas == cut_after:
                    _drop_connection(request)
                    return stream
                deltas += 1
            await stream.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await stream.write_eof()
    except ConnectionResetError:
        # The client went away mid-stream; the creating request decides whether generation stops.
        logger.info("client left the stream of %s", run.id)
    return stream


def _drop_connection(request: web.Request) -> None:
    # close(), not abort(): what was already written reaches the client, then the body ends mid-way.
    if request.transport is not None:
        request.transport.close()


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _status_error(fault: StatusFault) -> ApiError:
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    error_type = _ERROR_TYPES.get(fault.code, "requests" if fault.code == 429 else "server_error")
    return ApiError(
        fault.code,
        fault.message or f"The offline model answered {fault.code} as scripted.",
        type_=error_type,
        code=_ERROR_CODES.get(fault.code),
        headers=headers,
    )


def _offered_tools(create: CreateResponse, *, honour_tool_choice: bool) -> dict[str, Any]:
    """The tools the reply may call, with their schemas; none when ``tool_choice`` is ``"none"`` on a server that
    honours it (the stateless profile ignores it, as Ollama does: rules.py)."""
    if honour_tool_choice and create.tool_choice == "none":
        return {}
    return {tool.name: tool.parameters for tool in create.tools}


async def _get_response(request: web.Request) -> web.StreamResponse:
    """The stored Response; with ``stream=true`` its events again (after ``starting_after``), live if unfinished."""
    response_id = request.match_info["response_id"]
    run = _state(request).responses.get(response_id)
    if run is None:
        raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
    if request.query.get("stream") != "true":
        return web.json_response(run.response)
    if not run.background:
        # OpenAI keeps the events of background responses only, and answers a re-stream it cannot serve with 400
        # invalid_request_error (as for one "more than 5 minutes old", openai/openai-python#2828), not 404: the
        # response exists, it is the request that cannot be met.
        raise ApiError(
            400, "This response cannot be streamed because it was not created with background=true.", param="stream"
        )
    # A re-stream only follows the response; leaving it never cancels anything.
    try:
        starting_after = int(request.query.get("starting_after", "-1"))
    except ValueError:
        raise ApiError(400, "starting_after must be an integer.", param="starting_after") from None
    return await _stream(request, run, None, starting_after=starting_after)


async def _cancel_response(request: web.Request) -> web.StreamResponse:
    """Cancel a queued or in-progress background response; a finished one is returned as it is (idempotent)."""
    response_id = request.match_info["response_id"]
    run = _state(request).responses.get(response_id)
    if run is None:
        raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
    if not run.background:
        raise ApiError(400, "Only responses created with background=true can be cancelled.", param="response_id")
    if run.cancel():
        logger.info("background response %s cancelled", run.id)
    answer = web.json_response(run.response)
    run.settle_usage()
    return answer


# --- Control ----------------------------------------------------------------------------------------------------


async def _get_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response([fault.model_dump() for fault in _state(request).faults.pending()])


async def _push_faults(request: web.Request) -> web.StreamResponse:
    try:
        faults = Fault.parse_list(await _json_body(request))
    except ValidationError as exc:
        raise ApiError(400, f"Invalid faults: {exc.errors()[0]['msg']}") from None
    plan = _state(request).faults
    plan.extend(faults)
    return web.json_response({"pending": len(plan)})


async def _clear_faults(request: web.Request) -> web.StreamResponse:
    _state(request).faults.clear()
    return web.json_response({"pending": 0})


async def _get_pace(request: web.Request) -> web.StreamResponse:
    return web.json_response(dataclasses.asdict(_state(request).pace))


async def _set_pace(request: web.Request) -> web.StreamResponse:
    """Change the fields given (``0`` for no pause); the others keep their values."""
    update = parse_body(PaceUpdate, await _json_body(request))
    state = _state(request)
    state.pace = update.apply_to(state.pace)
    return await _get_pace(request)


async def _get_requests(request: web.Request) -> web.StreamResponse:
    return web.json_response([recorded.to_json() for recorded in _state(request).requests])


async def _clear_requests(request: web.Request) -> web.StreamResponse:
    _state(request).requests.clear()
    return web.json_response([])
