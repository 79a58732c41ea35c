"""The assistant's definition, read from ``assistant.toml``.

The definition is data sent with every request, so it lives in a human-edited file deployed in the package layer and
is validated at load time: a typo in a tool name fails the cold start (and CI), not a user's first message.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from assistant.tools.builtin import default_registry
from assistant.tools.mcp_config import McpServerConfig
from assistant.tools.registry import ToolRegistry
from assistant.wiring import ModelProvider

#: The definition packaged next to this module.
PACKAGED_DEFINITION = "assistant.toml"

_NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class DefinitionError(ValueError):
    """The definition file is missing or invalid. The message names the file and the field."""


class AssistantDefinition(BaseModel):
    """Who the assistant is and what the model is asked with. Validate with a ``{"registry": ...}`` context to check
    tool names against a registry other than the built-in one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: str = ""
    model: _NonBlank
    instructions: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
    tools: tuple[str, ...] = ()
    #: Per response. Below ~256 a reasoning model can spend everything on reasoning and return no text at all.
    max_output_tokens: int = Field(ge=256, le=128_000)
    #: The most one request may send, in tokens: instructions, the earlier turns and the new message. Beyond it the
    #: oldest turns are left out (never the instructions or the new message), so a long conversation keeps being
    #: answered. Keep it below the model's context window minus ``max_output_tokens``; it also caps what every
    #: message of a long conversation costs in input tokens.
    input_budget_tokens: int = Field(default=25_000, ge=1_000, le=2_000_000)
    #: Only for models that are not reasoning models (which refuse it): see :func:`is_reasoning_model`.
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    #: One of the values the installed ``openai`` SDK knows (:func:`reasoning_efforts`), so the definition can never
    #: send what the API would refuse, nor lag behind it.
    reasoning_effort: str | None = None
    #: Create responses in background mode, so they outlive their HTTP stream: a dropped stream or a crashed worker
    #: finishes the same response instead of losing it. The price: the response is stored by the provider, and
    #: stopping it takes an explicit cancel call (closing the stream no longer stops it).
    resumable: bool = True
    #: Remote MCP servers whose tools the model is offered next to ``tools`` (see docs/mcp.md). Empty: the worker
    #: never imports the ``mcp`` SDK.
    mcp_servers: tuple[McpServerConfig, ...] = ()

    @field_validator("mcp_servers")
    @classmethod
    def _unique_servers(cls, servers: tuple[McpServerConfig, ...]) -> tuple[McpServerConfig, ...]:
        names = [server.name for server in servers]
        if len(set(names)) != len(names):
            raise ValueError("two MCP servers have the same name (it prefixes their tools' names)")
        return servers

    @field_validator("temperature")
    @classmethod
    def _temperature_for_a_sampling_model(cls, temperature: float | None, info: ValidationInfo) -> float | None:
        model = info.data.get("model")
        if temperature is not None and isinstance(model, str) and is_reasoning_model(model):
            raise ValueError(
                f"{model} is a reasoning model, which refuses `temperature` (the API answers 400): remove it, and "
                "use `reasoning_effort` to trade speed for depth"
            )
        return temperature

    @field_validator("reasoning_effort")
    @classmethod
    def _effort_the_sdk_knows(cls, effort: str | None, info: ValidationInfo) -> str | None:
        if effort is None:
            return None
        known = reasoning_efforts()
        if effort not in known:
            raise ValueError(f"unknown reasoning effort {effort!r}; the installed openai SDK knows {', '.join(known)}")
        if info.data.get("temperature") is not None:
            raise ValueError(
                "`reasoning_effort` is for reasoning models, which refuse `temperature` (the API answers 400): "
                "set one of the two"
            )
        return effort

    @field_validator("tools")
    @classmethod
    def _known_unique_tools(cls, tools: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        registry = _registry_from(info.context)
        unknown = [name for name in tools if name not in registry]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; registered tools are {sorted(registry.names)}")
        if len(set(tools)) != len(tools):
            raise ValueError("a tool is listed more than once")
        return tools


#: OpenAI's model families that reason before answering and refuse ``temperature``. The chat variants of gpt-5
#: (``gpt-5-chat-latest``) are not reasoning models, and open-weight ones (gpt-oss on Bedrock or vLLM) accept both.
_REASONING_MODEL_PREFIXES: Final = ("gpt-5", "o1", "o3", "o4")


def is_reasoning_model(model: str) -> bool:
    name = model.lower()
    return name.startswith(_REASONING_MODEL_PREFIXES) and "-chat" not in name


def reasoning_efforts() -> tuple[str, ...]:
    """The values of ``reasoning.effort`` the installed ``openai`` SDK declares (its ``ReasoningEffort`` type).

    Imported here rather than at module level: the SDK costs most of a second to import, and only what loads a
    definition (the worker, which uses the SDK anyway, and the CDK app) pays for it."""
    from openai.types.shared.reasoning_effort import ReasoningEffort

    literal = next(arg for arg in get_args(ReasoningEffort) if get_origin(arg) is Literal)
    return tuple(str(value) for value in get_args(literal))


def _registry_from(context: Any) -> ToolRegistry:
    if isinstance(context, dict) and isinstance(context.get("registry"), ToolRegistry):
        registry: ToolRegistry = context["registry"]
        return registry
    return default_registry()


def load_definition(path: Path | None = None, *, registry: ToolRegistry | None = None) -> AssistantDefinition:
    """Load and validate the definition (default: the packaged ``assistant.toml``).

    ``registry`` is what tool names are checked against; by default the built-in tools.
    """
    source: Traversable | Path
    if path is None:
        source = resources.files("assistant").joinpath(PACKAGED_DEFINITION)
        where = f"packaged {PACKAGED_DEFINITION}"
    else:
        source = path
        where = str(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{where}: cannot read the assistant definition ({exc.strerror or exc}).") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{where}: not valid TOML: {exc}") from exc
    try:
        return AssistantDefinition.model_validate(data, context={"registry": registry or default_registry()})
    except ValidationError as exc:
        problems = "; ".join(
            f"field `{'.'.join(str(p) for p in error['loc']) or '(top level)'}`: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise DefinitionError(f"{where}: invalid assistant definition: {problems}") from exc


def check_for_provider(definition: AssistantDefinition, provider: ModelProvider, *, where: str = "definition") -> None:
    """Refuse a definition that the provider's server would refuse on every request, naming the field and the
    profile: at synth (infra.definition) and when the worker builds its model client, never at a user's message.

    Settings a profile does not support are not sent at all (``reasoning`` to a self-hosted server, ``tool_choice``
    where it is ignored: :class:`assistant.wiring.ProviderCapabilities`), so only a value the profile's models
    take in a narrower range than the SDK is a refusal here."""
    capabilities = provider.capabilities
    effort = definition.reasoning_effort
    accepted = capabilities.reasoning_efforts
    if effort and capabilities.reasoning and accepted is not None and effort not in accepted:
        raise DefinitionError(
            f"{where}: field `reasoning_effort`: {effort!r} is refused by the models of the `{provider.value}` "
            f"profile, which take {', '.join(repr(value) for value in accepted)}"
        )
