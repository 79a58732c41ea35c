"""The wiring declaration's own guarantees."""

from __future__ import annotations

import pytest

from assistant.wiring import (
    FUNCTIONS,
    POWERTOOLS_ENV,
    Env,
    FunctionSpec,
    InvalidSetting,
    MissingSetting,
    function_environment,
    set_openai_key_command,
)
from infra.names import openai_secret_name


def test_every_function_declares_what_powertools_reads() -> None:
    # Powertools' Metrics refuses to flush without a namespace: a function lacking it fails every invocation.
    for spec in FUNCTIONS:
        assert set(POWERTOOLS_ENV) <= set(spec.env), spec.name
    bare = FunctionSpec(name="x", handler="x.handler", description="", timeout_seconds=1)
    assert bare.env == POWERTOOLS_ENV


def test_the_operator_is_told_the_exact_command_that_sets_the_model_key() -> None:
    assert (
        set_openai_key_command(openai_secret_name("pr-42"))
        == ".venv/bin/python -m scripts.set_openai_key --stage pr-42"
    )
    # A secret named some other way still gets a command that works, without the key on the command line.
    assert "--secret-id other/name" in set_openai_key_command("other/name")
    assert "file://" in set_openai_key_command("other/name")


def test_a_function_environment_is_exactly_its_declared_variables_with_a_value() -> None:
    spec = FunctionSpec(
        name="x", handler="x.handler", description="", timeout_seconds=1, env=(Env.QUEUE_URL, Env.MODEL_OVERRIDE)
    )
    values: dict[Env, str | None] = dict.fromkeys(POWERTOOLS_ENV, "p")
    values |= {Env.QUEUE_URL: "https://queue", Env.TABLE_NAME: "not-declared", Env.MODEL_OVERRIDE: None}
    environment = function_environment(spec, values)
    assert environment == {**{name.value: "p" for name in POWERTOOLS_ENV}, "QUEUE_URL": "https://queue"}
    # A declared variable the stack has no value for (not even None: deliberately unset) is named.
    del values[Env.QUEUE_URL]
    with pytest.raises(MissingSetting, match="QUEUE_URL"):
        function_environment(spec, values)


def test_a_function_s_settings_are_typed_and_read_exactly_its_spec_s_variables() -> None:
    from assistant.settings import FUNCTION_SETTINGS, SendMessageSettings, _Table

    for settings in FUNCTION_SETTINGS:
        assert settings.function is not None
        spec = next(spec for spec in FUNCTIONS if spec.name == settings.function)
        assert settings.variables() == set(spec.env) - set(POWERTOOLS_ENV), settings.__name__
    with pytest.raises(MissingSetting, match="QUEUE_URL"):
        SendMessageSettings.from_env({"TABLE_NAME": "t", "CALLBACK_URL": "https://c"})
    with pytest.raises(InvalidSetting, match="max_waiting_messages"):
        SendMessageSettings.from_env(
            {"TABLE_NAME": "t", "CALLBACK_URL": "c", "QUEUE_URL": "q", "MAX_WAITING_MESSAGES": "0"}
        )
    # A settings class that drifts from its function's variables fails when it is defined.
    with pytest.raises(TypeError, match="SETTINGS gives authorizer"):

        class _Drifted(_Table):
            function = FUNCTIONS[0].name


def test_checking_a_stage_s_values_refuses_a_bad_one_by_name_and_takes_defaults_for_absent_ones() -> None:
    from scripts.local_stack.settings import limits_from_environment

    # Only MAX_WAITING_MESSAGES is given: every other limit is its stage default.
    assert limits_from_environment({"MAX_WAITING_MESSAGES": "3"})[Env.MAX_WAITING_MESSAGES] == "3"
    with pytest.raises(InvalidSetting, match="max_waiting_messages"):
        limits_from_environment({"MAX_WAITING_MESSAGES": "0"})
    with pytest.raises(InvalidSetting, match="rate_limit_send_message"):
        limits_from_environment({"RATE_LIMIT_SEND_MESSAGE": "ten per minute"})
