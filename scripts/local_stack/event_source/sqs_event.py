"""Lambda's SQS event, built from a ReceiveMessage result, and its reading of the partial batch response."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("local_stack.poller")


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record exactly as Lambda builds it from a ReceiveMessage result."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return converted


def failed_ids(result: Any, messages: list[dict[str, Any]]) -> set[str]:
    """The records to leave on the queue, read the way Lambda reads a partial batch response.

    An identifier that is missing, empty or not in the batch makes Lambda treat the whole batch as failed.
    """
    all_ids = {message["MessageId"] for message in messages}
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return set()
    failures = result["batchItemFailures"] or []
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in all_ids:
            log.error("invalid batchItemFailures entry %r: the whole batch returns to the queue", failure)
            return all_ids
        failed.add(identifier)
    return failed
