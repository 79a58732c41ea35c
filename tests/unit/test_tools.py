"""The tool registry (schemas, argument handling, the server's own parameters) and the built-in tools."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from assistant.tools import ToolContext, ToolError, ToolRegistry, UnknownToolError, build_registry
from assistant.tools.builtin import MAX_EXPRESSION_CHARS, evaluate

CONTEXT = ToolContext(user_id="user-1", conversation_id="conv-1", message_id="msg-1")


def _error(output: str) -> str:
    parsed = json.loads(output)
    assert set(parsed) == {"error"}
    return str(parsed["error"])


# --- Schemas ----------------------------------------------------------------------------------------------------


class Window(BaseModel):
    start: str
    days: int = 1


def _registry_with_examples() -> tuple[ToolRegistry, list[dict[str, Any]]]:
    registry = ToolRegistry()
    calls: list[dict[str, Any]] = []

    @registry.tool
    def lookup(
        query: Annotated[str, Field(description="What to look for.")],
        who: ToolContext,
        limit: int = 5,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Look something up for the current user."""
        calls.append({"query": query, "user": who.user_id, "limit": limit, "title": title})
        return {"found": query, "limit": limit}

    @registry.tool(name="plan-window")
    def plan(window: Window) -> str:
        """Plan a window."""
        return f"{window.start}+{window.days}"

    return registry, calls


def test_spec_is_a_strict_function_tool_without_the_context_parameter() -> None:
    registry, _ = _registry_with_examples()

    [spec] = registry.specs(["lookup"])

    assert spec["type"] == "function"
    assert spec["name"] == "lookup"
    assert spec["strict"] is True
    assert spec["description"] == "Look something up for the current user."
    parameters = spec["parameters"]
    assert parameters["type"] == "object"
    assert parameters["additionalProperties"] is False
    # The server's parameter is invisible to the model; every other one is required (strict mode)...
    assert set(parameters["properties"]) == {"query", "limit", "title"}
    assert parameters["required"] == ["query", "limit", "title"]
    assert parameters["properties"]["query"] == {"type": "string", "description": "What to look for."}
    # ...so optional ones are nullable, and strict mode's forbidden `default` keyword is gone.
    assert parameters["properties"]["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert "default" not in json.dumps(parameters)


def test_nested_models_are_strict_too_and_a_property_called_title_survives() -> None:
    registry, _ = _registry_with_examples()

    [spec] = registry.specs(["plan-window"])

    window = spec["parameters"]["$defs"]["Window"]
    assert window["additionalProperties"] is False
    assert window["required"] == ["start", "days"]
    assert "title" in registry.specs(["lookup"])[0]["parameters"]["properties"]


def test_specs_keep_the_requested_order_and_reject_unknown_names() -> None:
    registry, _ = _registry_with_examples()

    assert [spec["name"] for spec in registry.specs(["plan-window", "lookup"])] == ["plan-window", "lookup"]
    with pytest.raises(UnknownToolError):
        registry.specs(["lookup", "nope"])


# --- Invocation -------------------------------------------------------------------------------------------------


def test_invoke_injects_the_server_context_and_applies_defaults_for_null() -> None:
    registry, calls = _registry_with_examples()

    result = registry.invoke("lookup", json.dumps({"query": "tea", "limit": None, "title": None}), CONTEXT)

    assert result.ok
    assert json.loads(result.output) == {"found": "tea", "limit": 5}
    assert calls == [{"query": "tea", "user": "user-1", "limit": 5, "title": None}]


def test_model_cannot_set_the_context_parameter() -> None:
    registry, calls = _registry_with_examples()

    result = registry.invoke(
        "lookup", json.dumps({"query": "tea", "limit": 1, "title": None, "who": {"user_id": "attacker"}}), CONTEXT
    )

    assert not result.ok
    assert "'who'" in _error(result.output)
    assert calls == []


def test_model_cannot_smuggle_a_user_id_or_any_unknown_argument() -> None:
    registry, calls = _registry_with_examples()

    result = registry.invoke(
        "lookup", json.dumps({"query": "tea", "limit": 1, "title": None, "user_id": "attacker"}), CONTEXT
    )

    assert not result.ok
    assert "user_id" in _error(result.output)
    assert calls == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"limit": 1, "title": null}', "query"),
        ('{"query": "tea", "limit": "many", "title": null}', "limit"),
    ],
)
def test_bad_arguments_become_readable_failures(arguments: str, expected: str) -> None:
    registry, calls = _registry_with_examples()

    result = registry.invoke("lookup", arguments, CONTEXT)

    assert not result.ok
    assert expected in _error(result.output)
    assert calls == []


def test_unknown_tool_is_a_failure_not_an_exception() -> None:
    registry, _ = _registry_with_examples()

    result = registry.invoke("rm_rf", "{}", CONTEXT)

    assert not result.ok
    assert "rm_rf" in _error(result.output)


def test_tool_error_message_reaches_the_model() -> None:
    registry = ToolRegistry()

    @registry.tool
    def picky(value: int) -> int:
        """Only likes 7."""
        if value != 7:
            raise ToolError("Only 7 is acceptable.")
        return value

    assert registry.invoke("picky", '{"value": 7}', CONTEXT).output == "7"
    refused = registry.invoke("picky", '{"value": 8}', CONTEXT)
    assert not refused.ok
    assert _error(refused.output) == "Only 7 is acceptable."


def test_unexpected_tool_exception_is_logged_with_traceback_and_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    registry = ToolRegistry()

    @registry.tool
    def broken() -> str:
        """Always breaks."""
        raise RuntimeError("secret internal detail")

    with caplog.at_level(logging.ERROR, logger="assistant.tools.registry"):
        result = registry.invoke("broken", "{}", CONTEXT)

    assert not result.ok
    assert "secret internal detail" not in result.output
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


# --- Registration -----------------------------------------------------------------------------------------------


def test_registration_refuses_what_cannot_be_described_safely() -> None:
    registry = ToolRegistry()

    def undocumented(x: int) -> int:
        return x

    def unannotated(x):  # type: ignore[no-untyped-def]
        """Has no annotation."""
        return x

    def variadic(*args: int) -> int:
        """Takes anything."""
        return len(args)

    def two_contexts(a: ToolContext, b: ToolContext) -> str:
        """Two contexts."""
        return a.user_id + b.user_id

    with pytest.raises(ValueError, match="docstring"):
        registry.tool(undocumented)
    with pytest.raises(TypeError, match="annotation"):
        registry.tool(unannotated)
    with pytest.raises(TypeError, match="keyword"):
        registry.tool(variadic)
    with pytest.raises(TypeError, match="more than one ToolContext"):
        registry.tool(two_contexts)
    with pytest.raises(ValueError, match="must match"):
        registry.tool(name="has space")(variadic)
    assert registry.names == frozenset()


def test_duplicate_names_are_refused() -> None:
    registry = ToolRegistry()

    @registry.tool
    def once() -> str:
        """Once."""
        return "1"

    def again() -> str:
        """Again."""
        return "2"

    with pytest.raises(ValueError, match="already registered"):
        registry.tool(name="once")(again)
    assert registry.invoke("once", "{}", CONTEXT).output == "1"


# --- current_time -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Tokyo", {"datetime": "2026-07-01T21:30:00+09:00", "weekday": "Wednesday", "utc_offset": "+0900"}),
        # Daylight saving time is applied (EDT in July).
        ("America/New_York", {"datetime": "2026-07-01T08:30:00-04:00", "weekday": "Wednesday", "utc_offset": "-0400"}),
        ("UTC", {"datetime": "2026-07-01T12:30:00+00:00", "weekday": "Wednesday", "utc_offset": "+0000"}),
    ],
)
def test_current_time_in_a_zone(zone: str, expected: dict[str, str]) -> None:
    registry = build_registry(now=lambda: datetime(2026, 7, 1, 12, 30, 0, tzinfo=UTC))

    result = registry.invoke("current_time", json.dumps({"timezone": zone}), CONTEXT)

    assert result.ok
    assert json.loads(result.output) == {"timezone": zone, **expected}


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "/etc/localtime"])
def test_current_time_rejects_unknown_zones_clearly(zone: str) -> None:
    result = build_registry().invoke("current_time", json.dumps({"timezone": zone}), CONTEXT)

    assert not result.ok
    assert "Unknown time zone" in _error(result.output)


# --- calculate --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+3*4", "14"),
        ("(2+3)*4", "20"),
        ("0.1 + 0.2", "0.3"),
        ("1.10 * 3", "3.3"),
        ("-(2**-2)", "-0.25"),
        ("--3", "3"),
        ("7/2", "3.5"),
        ("2**100", "1267650600228229401496703205376"),
        ("1/3", "0.333333333333 (rounded to 12 significant digits)"),
        ("2**10 / 3", "341.333333333 (rounded to 12 significant digits)"),
        ("2/3", "0.666666666667 (rounded to 12 significant digits)"),
        ("2**1000", "1.07150860719E+301 (rounded to 12 significant digits)"),
        ("1/8", "0.125"),
        ("10**1000 * 10**1000", "1E+2000"),
        ("1_000 * 3", "3000"),
        ("2.5e3 / 5", "500"),
        ("3 - 3", "0"),
    ],
)
def test_calculate_is_exact_decimal_arithmetic(expression: str, expected: str) -> None:
    result = build_registry().invoke("calculate", json.dumps({"expression": expression}), CONTEXT)

    assert result.ok, result.output
    assert result.output == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1/0", "Division by zero"),
        ("0/0", "no defined value"),
        ("9**9**9", "Exponents must be whole numbers"),
        ("2**0.5", "Exponents must be whole numbers"),
        ("(10**1000)**1000", "too large"),
        ("__import__('os').system('true')", "Unsupported syntax"),
        ("x + 1", "Unsupported syntax"),
        ("True + 1", "Unsupported syntax"),
        ("1j * 2", "Unsupported syntax"),
        ("7 % 2", "Unsupported syntax"),
        ("0x10 + 1", "not a decimal number"),
        ("2 +", "Cannot parse"),
        ("1" + "+1" * 150, "too long"),
        ("(" * 300 + "1" + ")" * 300, "longer than"),
    ],
)
def test_calculate_refuses_bad_or_hostile_expressions(expression: str, expected: str) -> None:
    result = build_registry().invoke("calculate", json.dumps({"expression": expression}), CONTEXT)

    assert not result.ok
    assert expected in _error(result.output)


def test_expression_length_limit_is_checked_before_parsing() -> None:
    with pytest.raises(ToolError, match="longer than"):
        evaluate("1" * (MAX_EXPRESSION_CHARS + 1))


def test_oversized_or_hostile_arguments_from_the_model_are_a_tool_error() -> None:
    from assistant.tools.builtin import build_registry
    from assistant.tools.registry import MAX_ARGUMENT_CHARS, ToolContext

    registry = build_registry()
    context = ToolContext(user_id="u", conversation_id="c", message_id="m")
    huge_zone = json.dumps({"timezone": "A" * 100_000})
    nested = '{"timezone": ' + "[" * 5_000 + "]" * 5_000 + "}"
    for arguments in (huge_zone, nested, json.dumps({"timezone": "Z" * 65}), json.dumps({"expression": "1" * 20})):
        result = registry.invoke("current_time", arguments, context)
        assert not result.ok
        # What goes back to the model is short, whatever it sent.
        assert len(result.output) < 300
    assert len(huge_zone) > MAX_ARGUMENT_CHARS
