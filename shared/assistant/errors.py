"""Typed errors. Each carries the protocol's error ``code`` and a message safe to show a user.

Handlers turn an :class:`AssistantError` into an ``error`` frame; anything else is a bug and becomes ``internal``
(with the details in the log under the correlation id, never in the frame).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_ACTION = "unknown_action"
    TOO_LARGE = "too_large"
    NOT_FOUND = "not_found"
    #: An attachment of a type not allowed, not what it claims by its first bytes, or that the model cannot read.
    UNSUPPORTED_ATTACHMENT = "unsupported_attachment"
    QUOTA_EXCEEDED = "quota_exceeded"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an error code, not a credential
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an error code, not a credential
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_NOT_CONFIGURED = "model_not_configured"
    INTERNAL = "internal"


class AssistantError(Exception):
    """Base of every error the system expects. ``public_message`` may be sent to the user."""

    code: ErrorCode = ErrorCode.INTERNAL
    #: Whether trying the same work again later may succeed (the worker lets SQS redeliver these).
    retryable: bool = False

    def __init__(self, public_message: str) -> None:
        super().__init__(public_message)
        self.public_message = public_message


class BadRequest(AssistantError):
    code = ErrorCode.BAD_REQUEST


class UnknownAction(AssistantError):
    code = ErrorCode.UNKNOWN_ACTION


class TooLarge(AssistantError):
    code = ErrorCode.TOO_LARGE


class NotFound(AssistantError):
    """Also used for things that exist but belong to someone else: never a hint that they exist."""

    code = ErrorCode.NOT_FOUND


class UnsupportedAttachment(AssistantError):
    code = ErrorCode.UNSUPPORTED_ATTACHMENT


class QuotaExceeded(AssistantError):
    code = ErrorCode.QUOTA_EXCEEDED


class RateLimited(AssistantError):
    """Too many requests of one kind from one user, or too many of their messages waiting: try again later."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, public_message: str, *, retry_after_ms: int) -> None:
        super().__init__(public_message)
        self.retry_after_ms = max(1, retry_after_ms)


class TokenExpired(AssistantError):
    """The access token this connection was opened with has expired: sign in again and reconnect."""

    code = ErrorCode.TOKEN_EXPIRED


class TokenRevoked(AssistantError):
    """Cognito no longer accepts the connection's access token: the user signed out everywhere, was disabled or
    deleted, or the token's refresh token was revoked. Signing in again (not a refresh) is the way back."""

    code = ErrorCode.TOKEN_REVOKED


class ModelError(AssistantError):
    """The model could not produce a reply."""

    code = ErrorCode.MODEL_UNAVAILABLE


class ModelNotConfigured(AssistantError):
    """The stage has no model key yet (its secret was never set): an operator's step, not worth a retry."""

    code = ErrorCode.MODEL_NOT_CONFIGURED


class ModelUnavailable(ModelError):
    """Transient: rate limits, 5xx, timeouts, dropped connections, after the client's own retries."""

    retryable = True


class ModelFailed(ModelError):
    """The model reported a failure (``error`` event, ``response.failed``); retrying the same input won't help."""


class ModelIncomplete(ModelError):
    """The response ended early (``response.incomplete``), e.g. the output-token limit or a content filter."""

    def __init__(self, public_message: str, *, reason: str | None = None) -> None:
        super().__init__(public_message)
        self.reason = reason


class ReplyInterrupted(ModelError):
    """A reply stopped after text reached the user and cannot be resumed without a duplicate turn."""
