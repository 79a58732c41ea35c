"""The assistant definition file: the packaged one is valid, and mistakes are reported with file and field."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.definition import (
    AssistantDefinition,
    DefinitionError,
    check_for_provider,
    is_reasoning_model,
    load_definition,
    reasoning_efforts,
)
from assistant.tools import ToolRegistry, default_registry
from assistant.wiring import ModelProvider

VALID = """
name = "Test assistant"
model = "gpt-5-mini"
max_output_tokens = 2000
tools = ["calculate"]
instructions = \"\"\"
Be brief.
\"\"\"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assistant.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_definition_is_valid_and_uses_registered_tools() -> None:
    definition = load_definition()

    assert definition.instructions.strip()
    assert definition.model
    assert definition.tools
    assert set(definition.tools) <= default_registry().names
    # The specs for its tools can be built, which is what every model request sends.
    assert [spec["name"] for spec in default_registry().specs(definition.tools)] == list(definition.tools)


def test_packaged_file_is_package_data() -> None:
    # The Lambda layer ships the package directory; the definition must be inside it, not next to the repo.
    packaged = resources.files("assistant").joinpath("assistant.toml")
    assert tomllib.loads(packaged.read_text(encoding="utf-8"))["name"] == load_definition().name


def test_load_from_a_path(tmp_path: Path) -> None:
    definition = load_definition(_write(tmp_path, VALID))

    assert definition == AssistantDefinition(
        name="Test assistant",
        model="gpt-5-mini",
        max_output_tokens=2000,
        tools=("calculate",),
        instructions="Be brief.",
    )
    assert definition.temperature is None
    assert definition.reasoning_effort is None
    assert definition.resumable is True


def test_packaged_definition_is_resumable() -> None:
    # Background mode is what lets a dropped stream or a dead worker finish the same response on OpenAI.
    assert load_definition().resumable is True


def test_resumable_can_be_turned_off(tmp_path: Path) -> None:
    definition = load_definition(_write(tmp_path, VALID + "resumable = false\n"))

    assert definition.resumable is False


def test_definition_is_frozen(tmp_path: Path) -> None:
    definition = load_definition(_write(tmp_path, VALID))

    with pytest.raises(ValidationError):
        definition.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        (('tools = ["calculate"]', 'tools = ["calculate", "send_email"]'), "tools", "send_email"),
        (('tools = ["calculate"]', 'tools = ["calculate", "calculate"]'), "tools", "more than once"),
        (('"""\nBe brief.\n"""', '"""\n   \n"""'), "instructions", "at least 1 character"),
        (("max_output_tokens = 2000", "max_output_tokens = 10"), "max_output_tokens", "greater than or equal"),
        (("max_output_tokens = 2000", "max_output_tokens = 10000000"), "max_output_tokens", "less than or equal"),
        (('model = "gpt-5-mini"', 'model = ""'), "model", "at least 1 character"),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\nreasoning_effort = "extreme"'), "reasoning_effort", ""),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\ntemperature = 3.5'), "temperature", ""),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\ntemperature = 0.7'), "temperature", "refuses `temperature`"),
        (
            ('model = "gpt-5-mini"', 'model = "my-llama"\ntemperature = 0.7\nreasoning_effort = "low"'),
            "reasoning_effort",
            "set one of the two",
        ),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\nreasoning_effort = "extreme"'), "reasoning_effort", "xhigh"),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\nresumable = "sometimes"'), "resumable", "boolean"),
        (('model = "gpt-5-mini"', 'model = "gpt-5-mini"\nassistant_id = "asst_123"'), "assistant_id", "Extra"),
        (('name = "Test assistant"\n', ""), "name", "Field required"),
    ],
)
def test_invalid_definition_names_file_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, detail: str
) -> None:
    old, new = change
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new))

    with pytest.raises(DefinitionError) as raised:
        load_definition(path)

    message = str(raised.value)
    assert str(path) in message
    assert f"field `{field}`" in message
    assert detail in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'name = "unterminated\n')

    with pytest.raises(DefinitionError, match="not valid TOML") as raised:
        load_definition(path)
    assert str(path) in str(raised.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(DefinitionError, match="cannot read") as raised:
        load_definition(path)
    assert str(path) in str(raised.value)


def test_tools_are_checked_against_the_given_registry(tmp_path: Path) -> None:
    registry = ToolRegistry()

    @registry.tool
    def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return order_id

    path = _write(tmp_path, VALID.replace('tools = ["calculate"]', 'tools = ["lookup_order"]'))

    assert load_definition(path, registry=registry).tools == ("lookup_order",)
    # The built-in registry does not have it, so the default check refuses the same file.
    with pytest.raises(DefinitionError, match="lookup_order"):
        load_definition(path)


def test_reasoning_efforts_are_the_installed_sdks_and_a_sampling_model_takes_temperature(tmp_path: Path) -> None:
    from openai.types.shared.reasoning_effort import ReasoningEffort

    assert set(reasoning_efforts()) == set(ReasoningEffort.__args__[0].__args__)  # type: ignore[attr-defined]
    assert "low" in reasoning_efforts()
    path = _write(tmp_path, VALID.replace('model = "gpt-5-mini"', 'model = "gpt-5-chat-latest"\ntemperature = 0.7'))
    assert load_definition(path).temperature == 0.7
    assert is_reasoning_model("o4-mini")
    assert not is_reasoning_model("openai.gpt-oss-120b-1:0")


# --- The definition against each provider profile --------------------------------------------------------------


@pytest.mark.parametrize("provider", list(ModelProvider))
def test_the_packaged_definition_works_on_every_profile(provider: ModelProvider) -> None:
    check_for_provider(load_definition(), provider)


@pytest.mark.parametrize("provider", [ModelProvider.BEDROCK, ModelProvider.BEDROCK_MANTLE])
def test_an_effort_the_profiles_models_refuse_is_refused_naming_field_and_profile(provider: ModelProvider) -> None:
    definition = load_definition().model_copy(update={"reasoning_effort": "minimal"})
    with pytest.raises(DefinitionError) as refused:
        check_for_provider(definition, provider)
    assert "`reasoning_effort`" in str(refused.value)
    assert f"`{provider.value}`" in str(refused.value)
    # A self-hosted server is never sent `reasoning`, so nothing there refuses it; OpenAI takes every value.
    check_for_provider(definition, ModelProvider.OPENAI_COMPATIBLE)
    check_for_provider(definition, ModelProvider.OPENAI)
