"""Reading DynamoDB's answer when a conditional write or a transaction is refused: one place for every store."""

from __future__ import annotations

from botocore.exceptions import ClientError


def condition_failed(exc: ClientError) -> bool:
    """A single-item write whose ``ConditionExpression`` did not hold."""
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def cancellation_reasons(exc: ClientError) -> list[str | None] | None:
    """Per item of a refused transaction, why it was cancelled (``None`` for an item that was fine); ``None`` when
    the error is not a transaction's cancellation at all."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    return [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]


def item_condition_failed(reasons: list[str | None] | None, index: int) -> bool:
    """Whether the transaction's item at ``index`` was refused by its condition."""
    return reasons is not None and len(reasons) > index and reasons[index] == "ConditionalCheckFailed"
