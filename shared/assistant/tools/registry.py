"""Tools the model may call: registration, JSON schemas and safe invocation.

The schema of a tool is derived from its Python signature, so the function and what the model is told about it
cannot drift apart. Tools run in strict mode: the model must supply every declared argument and nothing else, and
the server's own values (the :class:`ToolContext`) are never part of what the model can set, so a model can never
choose the user a tool runs for.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_json

#: A child of the functions' Powertools logger: its lines carry the invocation's correlation id and user.
logger = Logger(child=True)

#: What the Responses API accepts as a function name.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ToolContext:
    """Facts the server knows about the turn. Injected into tools that ask for it; the model never sees or sets it."""

    user_id: str
    conversation_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """What goes back to the model as the function call's output. ``ok=False`` outputs explain the failure."""

    ok: bool
    output: str


class ToolError(Exception):
    """A failure the tool expects (bad input, unknown zone). Its message is written for the model to read."""


class UnknownToolError(KeyError):
    """A tool name that is not registered."""


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    function: Callable[..., Any]
    arguments: type[BaseModel]
    #: Parameters whose default applies when the model sends ``null`` (strict mode makes every property required).
    defaulted: frozenset[str]
    context_parameter: str | None
    schema: dict[str, Any]


class ToolRegistry:
    """A set of tools. Register with :meth:`tool`, describe them with :meth:`specs`, run them with :meth:`invoke`."""

    def __init__(self) -> None:
        self._tools: dict[str, _Tool] = {}

    @overload
    def tool(self, function: _F) -> _F: ...

    @overload
    def tool(self, *, name: str | None = None) -> Callable[[_F], _F]: ...

    def tool(self, function: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register ``function`` as a tool (usable as ``@registry.tool`` or ``@registry.tool(name=...)``).

        The function is returned unchanged so it stays directly callable (and testable) as plain Python.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            tool = _build_tool(func, name or func.__name__)
            if tool.name in self._tools:
                raise ValueError(f"A tool named {tool.name!r} is already registered.")
            self._tools[tool.name] = tool
            return func

        return register(function) if function is not None else register

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def specs(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """Responses API function-tool params for ``names``, in that order."""
        specs = []
        for name in names:
            tool = self._get(name)
            specs.append(
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.schema,
                    "strict": True,
                }
            )
        return specs

    def invoke(self, name: str, arguments_json: str, context: ToolContext) -> ToolResult:
        """Run a tool for the model. Never raises for the model's mistakes or the tool's failures.

        Those become ``ok=False`` results the model can read and react to; unexpected tool exceptions are logged
        with their traceback so an operator sees them.
        """
        tool = self._tools.get(name)
        if tool is None:
            logger.warning("Model called an unknown tool", extra={"tool": name})
            return _failure(f"There is no tool named {name!r}.")
        try:
            kwargs = _parse_arguments(tool, arguments_json)
        except ToolError as exc:
            logger.info("Rejected arguments for tool", extra={"tool": name})
            return _failure(str(exc))
        if tool.context_parameter is not None:
            kwargs[tool.context_parameter] = context
        try:
            result = tool.function(**kwargs)
        except ToolError as exc:
            logger.info("Tool reported an error", extra={"tool": name})
            return _failure(str(exc))
        except Exception:
            logger.exception("Tool raised", extra={"tool": name})
            return _failure(f"The tool {name!r} failed unexpectedly.")
        return ToolResult(ok=True, output=result if isinstance(result, str) else to_json(result).decode())

    def _get(self, name: str) -> _Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name) from None


def _failure(message: str) -> ToolResult:
    return ToolResult(ok=False, output=json.dumps({"error": message}))


#: A model's arguments to one built-in tool call; anything longer is refused before it is parsed (a model can emit
#: megabytes of arguments, and json.loads of deeply nested ones recurses).
MAX_ARGUMENT_CHARS = 16 * 1024


def _parse_arguments(tool: _Tool, arguments_json: str) -> dict[str, Any]:
    if len(arguments_json) > MAX_ARGUMENT_CHARS:
        raise ToolError(f"The arguments are {len(arguments_json)} characters; at most {MAX_ARGUMENT_CHARS} are read.")
    try:
        raw = json.loads(arguments_json) if arguments_json.strip() else {}
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise ToolError("The arguments are not valid JSON.") from None
    if not isinstance(raw, dict):
        raise ToolError("The arguments must be a JSON object.")
    if tool.context_parameter is not None and tool.context_parameter in raw:
        # Checked separately from unknown names so the log and the message say what was attempted.
        raise ToolError(f"The argument {tool.context_parameter!r} is set by the server and cannot be supplied.")
    try:
        parsed = tool.arguments.model_validate(raw)
    except ValidationError as exc:
        raise ToolError(_describe(exc)) from None
    values = {field: getattr(parsed, field) for field in type(parsed).model_fields}
    return {key: value for key, value in values.items() if not (value is None and key in tool.defaulted)}


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "Invalid arguments: " + "; ".join(parts)


def _build_tool(func: Callable[..., Any], name: str) -> _Tool:
    if not _NAME_RE.match(name):
        raise ValueError(f"Tool name {name!r} must match {_NAME_RE.pattern}.")
    description = inspect.getdoc(func)
    if not description:
        raise ValueError(f"Tool {name!r} needs a docstring: it is the description the model reads.")
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    defaulted: set[str] = set()
    context_parameter: str | None = None
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            raise TypeError(f"Tool {name!r}: parameter {parameter.name!r} must be a named (keyword) parameter.")
        if parameter.name not in hints:
            raise TypeError(f"Tool {name!r}: parameter {parameter.name!r} needs a type annotation.")
        annotation = hints[parameter.name]
        if annotation is ToolContext:
            if context_parameter is not None:
                raise TypeError(f"Tool {name!r} declares more than one ToolContext parameter.")
            context_parameter = parameter.name
        elif parameter.default is inspect.Parameter.empty:
            fields[parameter.name] = (annotation, ...)
        else:
            # Strict mode requires every property, so an optional parameter becomes a nullable one and `null`
            # means "use the function's default".
            fields[parameter.name] = (annotation | None, None)
            defaulted.add(parameter.name)
    arguments = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = _strict_schema(arguments.model_json_schema())
    return _Tool(
        name=name,
        description=description,
        function=func,
        arguments=arguments,
        defaulted=frozenset(defaulted),
        context_parameter=context_parameter,
        schema=schema,
    )


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a pydantic JSON schema acceptable to strict function calling.

    Strict mode wants ``additionalProperties: false`` and every property listed in ``required`` on every object,
    and rejects keywords such as ``default``; titles only cost tokens.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        cleaned: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "default"):
                continue
            if key in ("properties", "$defs"):
                # Keys here are property and definition names (a parameter may well be called `title`).
                cleaned[key] = {name: visit(sub) for name, sub in value.items()}
            else:
                cleaned[key] = visit(value)
        if cleaned.get("type") == "object":
            cleaned.setdefault("properties", {})
            cleaned["additionalProperties"] = False
            cleaned["required"] = list(cleaned["properties"])
        return cleaned

    strict: dict[str, Any] = visit(schema)
    return strict
