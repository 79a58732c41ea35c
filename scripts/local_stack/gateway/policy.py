"""How API Gateway reads a Lambda authorizer's answer: the IAM policy's decision and the context later events get."""

from __future__ import annotations

import fnmatch
from typing import Any


class AuthorizerConfigurationError(Exception):
    """The authorizer answered something API Gateway would reject (it returns 500 to the client)."""


def authorizer_decision(result: Any, method_arn: str) -> tuple[bool, dict[str, Any]]:
    """Whether the policy allows ``method_arn``, and the ``requestContext.authorizer`` later events carry.

    An explicit Deny wins over any Allow and no matching statement means Deny, as in IAM. Context values must be
    primitives; API Gateway hands them to the integration as strings.
    """
    if (
        not isinstance(result, dict)
        or "principalId" not in result
        or not isinstance(result.get("policyDocument"), dict)
    ):
        raise AuthorizerConfigurationError(f"authorizer answer lacks principalId or policyDocument: {result!r}")
    statements = result["policyDocument"].get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not (
            _matches(statement.get("Action"), "execute-api:Invoke") and _matches(statement.get("Resource"), method_arn)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return False, {}
        allowed = allowed or statement.get("Effect") == "Allow"
    context: dict[str, Any] = {"principalId": str(result["principalId"])}
    for key, value in (result.get("context") or {}).items():
        if isinstance(value, bool):
            context[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            context[key] = str(value)
        elif value is not None:
            raise AuthorizerConfigurationError(f"authorizer context value {key!r} is not a string, number or boolean")
    return allowed, context


def _matches(patterns: Any, value: str) -> bool:
    candidates = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in candidates)
