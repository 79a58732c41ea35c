"""The handler shapes: what every Lambda handler does around its one line of logic.

:func:`websocket_route` is the router of the message routes (``sendMessage``, the commands, ``$default``): it
parses the event (the authorizer's context included) and the frame, once, into the model of its action, and calls
the function mapped to that action. API Gateway already routed by action, so a frame whose action is not one of this
function's is refused (``bad_request``); so is one that does not parse. The outcome becomes the route response: the
function's frame, an ``error`` frame with the protocol's code for an :class:`AssistantError`, or an ``internal``
error frame for anything unexpected. The unexpected case is logged with its traceback and counted; the user sees
only a generic message and the request id to quote.

Before any of that, a frame on a connection whose token expired or was revoked (signed out everywhere, disabled,
deleted, refresh token revoked: :mod:`assistant.revocation`) is answered ``token_expired`` or ``token_revoked`` and
the connection closed. The revocation check asks Cognito's ``GetUser`` at most once per token per
``TOKEN_RECHECK_SECONDS`` in a container; every other frame costs a SHA-256 of the token and a dictionary lookup.

``$connect`` and ``$disconnect`` have their own shape (:mod:`assistant.connection_route`), without the protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from assistant import tracing
from assistant.client_frames import ClientFrameModel, parse_frame
from assistant.connection_route import LambdaHandler
from assistant.environment import DEFAULT_MAX_MESSAGE_CHARS
from assistant.errors import AssistantError, ErrorCode, RateLimited, TokenExpired, TokenRevoked
from assistant.events import RequestContext
from assistant.observability import WEBSOCKET_CORRELATION_PATH, Metric, logger, metrics
from assistant.refusals import REFUSAL_WINDOW_SECONDS, RefusalCounter
from assistant.revocation import RevocationCheck, TokenRefused
from assistant.server_frames import ErrorFrame, ServerFrameModel, route_response


class MessageRequestContext(RequestContext):
    route_key: str = Field(alias="routeKey")
    event_type: Literal["MESSAGE"] = Field(alias="eventType")


class MessageEvent(BaseModel):
    """The event of a frame on an open connection: who sent it (the authorizer's context), where, and the frame."""

    request_context: MessageRequestContext = Field(alias="requestContext")
    body: str | None = Field(None, alias="body")


#: What an action runs: the event (who sent it, on which connection) and its frame, parsed into its model.
RouteAction = Callable[[MessageEvent, Any], ServerFrameModel | None]


def websocket_route(
    actions: Mapping[type[ClientFrameModel], RouteAction],
    *,
    connections_api: Callable[[], Any],
    revocation: Callable[[], RevocationCheck],
    refusals: Callable[[], RefusalCounter],
    max_message_chars: Callable[[], int] = lambda: DEFAULT_MAX_MESSAGE_CHARS,
    every_action: bool = False,
) -> LambdaHandler:
    """The Lambda handler of a message route function: ``actions`` maps the frame type of each action it answers
    (``assistant.action_table.ACTION_TABLE`` routes exactly those to it: tests/unit/test_action_table.py) to what
    runs it; only those frames are parsed.

    ``connections_api`` gives the function's ``@connections`` client (to close a connection whose token expired or
    was revoked); ``revocation`` its check of tokens with Cognito; ``refusals`` the container's count of refused
    frames per connection (:mod:`assistant.refusals`); ``max_message_chars`` the function's limit on a message's
    characters (a ``sendMessage`` setting); ``every_action``: ``actions`` has every action (``$default``), so any
    other is an ``unknown_action`` rather than a ``bad_request``."""

    @tracing.capture_handler
    @logger.inject_lambda_context(correlation_id_path=WEBSOCKET_CORRELATION_PATH)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        parsed = MessageEvent.model_validate(event)
        logger.append_keys(
            userId=parsed.request_context.authorizer.user_id,
            connectionId=parsed.request_context.connection_id,
            routeKey=parsed.request_context.route_key,
        )
        metrics.add_metric(name=Metric.ROUTE_REQUESTS.value, unit=MetricUnit.Count, value=1)
        if parsed.request_context.authorizer.expired(time.time()):
            # The connection outlived its access token: the client signs in again and reconnects.
            logger.info("Connection ended: its access token expired")
            expired = TokenExpired("Your sign-in has expired. Sign in again to continue.")
            return _end_connection(parsed, connections_api(), counted_as=Metric.CONNECTIONS_EXPIRED, reason=expired)
        if _token_revoked(parsed, revocation):
            # Cognito no longer accepts the token (signed out everywhere, disabled, deleted, revoked): unlike
            # token_expired, a refresh does not help, the client must sign in again.
            logger.info("Connection ended: its access token was revoked")
            revoked = TokenRevoked("You were signed out. Sign in again to continue.")
            return _end_connection(parsed, connections_api(), counted_as=Metric.CONNECTIONS_REVOKED, reason=revoked)
        try:
            frame = parse_frame(
                parsed.body, max_message_chars=max_message_chars(), frames=actions, every_action=every_action
            )
            return route_response(actions[type(frame)](parsed, frame))
        except AssistantError as error:
            refused = Metric.RATE_LIMITED if error.code is ErrorCode.RATE_LIMITED else Metric.BAD_REQUESTS
            metrics.add_metric(name=refused.value, unit=MetricUnit.Count, value=1)
            logger.info("Request refused", extra={"code": error.code.value})
            connection_id = parsed.request_context.connection_id
            if error.code is ErrorCode.RATE_LIMITED and refusals().refuse(connection_id, time.monotonic()):
                refusals().forget(connection_id)
                # It kept sending past its limits (assistant.refusals).
                logger.warning("Connection closed: it kept hitting its rate limits")
                flooding = RateLimited(
                    "Too many requests were refused on this connection, so it was closed. Wait a minute, then "
                    "reconnect.",
                    retry_after_ms=int(REFUSAL_WINDOW_SECONDS * 1000),
                )
                metric = Metric.CONNECTIONS_CLOSED_FOR_FLOODING
                return _end_connection(parsed, connections_api(), counted_as=metric, reason=flooding)
            return route_response(ErrorFrame.from_error(error))
        except Exception:
            logger.exception("Route failed")
            request_id = parsed.request_context.request_id
            return route_response(
                ErrorFrame(code=ErrorCode.INTERNAL, message=f"Something went wrong (request {request_id}).")
            )

    return handler


def _token_revoked(event: MessageEvent, revocation: Callable[[], RevocationCheck]) -> bool:
    """Whether Cognito refuses the connection's token now (or did within the recheck interval).

    Cognito unavailable: the frame goes through. The token passed this check at ``$connect`` (which admits nobody
    unchecked) and the connection still ends when the token expires (15 minutes by default), so an outage costs at
    most that, where failing closed would cut every user off for as long as Cognito is unavailable."""
    token = event.request_context.authorizer.access_token
    if token is None:
        # Only a connection opened before the authorizer passed its token on; it ends when its token expires.
        return False
    try:
        answered = revocation().check(token.get_secret_value(), grace_on_outage=True)
    except TokenRefused:
        return True
    if not answered:
        logger.warning("Cognito could not be asked whether the connection's token was revoked; frame let through")
        metrics.add_metric(name=Metric.REVOCATION_CHECKS_UNAVAILABLE.value, unit=MetricUnit.Count, value=1)
    return False


def _end_connection(
    event: MessageEvent, connections_api: Any, *, counted_as: Metric, reason: AssistantError
) -> dict[str, Any]:
    """Tell the connection why, then close it. The frame is posted first: a route response would arrive after the
    close."""
    # Only this path posts and closes: the @connections helpers are imported when a connection is first ended.
    from assistant.push import post_then_close

    metrics.add_metric(name=counted_as.value, unit=MetricUnit.Count, value=1)
    post_then_close(connections_api, event.request_context.connection_id, ErrorFrame.from_error(reason))
    return route_response(None)
