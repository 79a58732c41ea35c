"""Checking frames against the published protocol schema (generated from the models: docs/protocol.schema.json)."""

from __future__ import annotations

from typing import Any

import jsonschema

from assistant.protocol import protocol_json_schema


def frame_errors(frame: dict[str, Any], definition: str) -> list[str]:
    """Why ``frame`` is not a valid ``clientFrame`` or ``serverFrame`` (empty: it is one)."""
    schema = protocol_json_schema()
    root = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return [error.message for error in jsonschema.Draft202012Validator(root).iter_errors(frame)]


def client_frame_errors(frame: dict[str, Any]) -> list[str]:
    return frame_errors(frame, "clientFrame")
