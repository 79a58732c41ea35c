"""An MCP tool as a Responses API function tool: its name as the model sees it, and its parameters.

Names: ``<server>__<tool>``, so two servers can both have a ``search`` and the model (and the user's ``tool``
frames) can tell them apart, while the name still ends with the server's own tool name. Function names must match
``^[A-Za-z0-9_-]{1,64}$``; MCP tool names may be longer and may contain dots, so such names are made to fit (see
:func:`function_name`).

Parameters: strict mode (``strict: true``) needs every property required and ``additionalProperties: false`` on
every object, and understands only part of JSON Schema. Turning an optional parameter into a required nullable one
would change what the server receives, so a schema is sent strict only when it already is strict in substance
(every property required, only keywords strict mode knows); any other schema goes as a non-strict function tool,
which OpenAI and the other Responses servers accept as it is. A schema strict mode would reject must never reach
it: the whole request would fail, not just the tool.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

#: What the Responses API accepts as a function name.
MAX_NAME_CHARS: Final = 64
SEPARATOR: Final = "__"
#: A description is prompt text the model pays for on every round; a long one is cut.
MAX_DESCRIPTION_CHARS: Final = 1_000
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
#: Keywords strict mode accepts (OpenAI's structured-outputs subset); ``title`` and ``default`` are dropped.
_STRICT_KEYWORDS: Final = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "description",
        "anyOf",
        "$defs",
        "$ref",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
_DROPPED_KEYWORDS: Final = frozenset({"title", "default", "$schema"})


def function_name(server: str, tool: str) -> str:
    """``<server>__<tool>`` when it fits the function-name rules; otherwise a name that still ends with the tool's
    own name whenever that alone fits, with a short hash of the server name as the prefix, and as a last resort a
    truncated name with a hash of the whole."""
    safe_tool = _INVALID_CHARS.sub("_", tool)
    name = f"{server}{SEPARATOR}{safe_tool}"
    if len(name) <= MAX_NAME_CHARS:
        return name
    short_server = _digest(server, 6)
    if len(short_server) + len(SEPARATOR) + len(safe_tool) <= MAX_NAME_CHARS:
        return f"{short_server}{SEPARATOR}{safe_tool}"
    suffix = _digest(f"{server}/{tool}", 8)
    return f"{short_server}{SEPARATOR}{safe_tool[: MAX_NAME_CHARS - len(short_server) - len(SEPARATOR) - 9]}_{suffix}"


def function_tool(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """The Responses API function-tool param for one MCP tool."""
    parameters = _cleaned(input_schema)
    strict = _strict_or_none(parameters)
    text = " ".join(description.split()) or f"The {name} tool."
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 1].rstrip() + "…"
    return {
        "type": "function",
        "name": name,
        "description": text,
        "parameters": strict if strict is not None else parameters,
        "strict": strict is not None,
    }


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _cleaned(schema: dict[str, Any]) -> dict[str, Any]:
    """The server's input schema as an object schema (the MCP spec requires one; a sloppy server may omit parts)."""
    parameters = {key: value for key, value in schema.items() if key != "$schema"}
    parameters["type"] = "object"
    parameters.setdefault("properties", {})
    return parameters


def _strict_or_none(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in strict form if it already means what strict mode would make of it, else ``None``."""

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        strict: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED_KEYWORDS:
                continue
            if key not in _STRICT_KEYWORDS:
                raise _NotStrict(key)
            if key in ("properties", "$defs"):
                if not isinstance(value, dict):
                    raise _NotStrict(key)
                strict[key] = {name: visit(sub) for name, sub in value.items()}
            else:
                strict[key] = visit(value)
        if strict.get("type") == "object" or "properties" in strict:
            properties = strict.setdefault("properties", {})
            if node.get("additionalProperties") not in (None, False):
                raise _NotStrict("additionalProperties")
            if set(strict.get("required", [])) != set(properties):
                raise _NotStrict("required")  # an optional property: strict mode would force the model to send it
            strict["additionalProperties"] = False
            strict["required"] = list(properties)
        return strict

    try:
        result: dict[str, Any] = visit(schema)
    except _NotStrict:
        return None
    return result


class _NotStrict(Exception):
    """The schema uses something strict mode cannot express as it is (the keyword is the message)."""
