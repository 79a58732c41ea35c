"""One declaration per setting (assistant.environment.SETTINGS): the stage and every function that reads a setting
accept exactly the same values, with the same defaults, so a stage that synthesizes never deploys functions that
refuse their own environment (a stage once accepted ``flush_interval_ms=5000``, which every worker refused at import).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.environment import SETTINGS, STAGE_SETTINGS, Env, InvalidSetting, Kind, Setting
from assistant.function_specs import FUNCTIONS
from assistant.settings import FUNCTION_SETTINGS
from assistant.stage_settings import STAGE_DEFAULTS
from assistant.token_verifier import token_recheck_seconds
from infra.stage import StageConfig
from scripts.local_stack.lambda_runtime.deployed import handler_env

#: How each function reads its environment: its settings class, or (the authorizer, which keeps pydantic off its
#: cold start) the function that reads its one tunable setting.
_READERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    **{cls.function: cls.from_env for cls in FUNCTION_SETTINGS if cls.function is not None},
    "authorizer": token_recheck_seconds,
}


def _function_accepts(function: str, setting: Setting, raw: str) -> bool:
    environment = {**handler_env(), setting.env.value: raw}
    try:
        _READERS[function](environment)
    except InvalidSetting:
        return False
    return True


def _stage_accepts(setting: Setting, value: object) -> bool:
    try:
        dataclasses.replace(StageConfig.for_stage("dev"), **{setting.field: value})
    except InvalidSetting:
        return False
    return True


def _values(setting: Setting) -> st.SearchStrategy[Any]:
    if setting.kind is Kind.INT:
        low = (setting.minimum or 0) - 3
        high = (setting.maximum or 10_000_000) + 3
        # Near each bound (where a drift between two checks shows) and anywhere in between.
        edges = [
            v for bound in (setting.minimum, setting.maximum) if bound is not None for v in range(bound - 2, bound + 3)
        ]
        return st.one_of(st.sampled_from(edges or [0]), st.integers(low, high))
    # Rate limits: well-formed ones, zeroes, and text that is not one at all. Not "": a function reads an empty
    # variable as an unset one (its default), so "" is not a value to compare; the stage refuses it
    # (test_a_stage_refuses_an_empty_limit).
    well_formed = st.tuples(st.integers(0, 50), st.integers(0, 200)).map(lambda p: f"{p[0]}/{p[1]}")
    return st.one_of(
        well_formed,
        st.sampled_from([" ", "10", "10/", "/30", "ten/30", "1.5/30", "10/0.5"]),
        st.text(min_size=1, max_size=8),
    )


@pytest.mark.parametrize("setting", STAGE_SETTINGS, ids=lambda s: s.field)
def test_the_stage_and_each_function_reading_a_setting_accept_exactly_the_same_values(setting: Setting) -> None:
    assert setting.functions, f"{setting.field} is a stage setting no function reads"

    @settings(max_examples=60, deadline=None)
    @given(value=_values(setting))
    def check(value: Any) -> None:
        stage = _stage_accepts(setting, value)
        raw = str(value)
        for function in setting.functions:
            assert _function_accepts(function, setting, raw) == stage, (
                f"{setting.field}={value!r}: the stage {'accepts' if stage else 'refuses'} it, {function} does not"
            )

    check()


@pytest.mark.parametrize("setting", STAGE_SETTINGS, ids=lambda s: s.field)
def test_a_stage_setting_has_the_same_default_at_synth_and_in_every_function(setting: Setting) -> None:
    stage_value = getattr(StageConfig.for_stage("dev"), setting.field)
    assert str(stage_value) == setting.default
    environment = {k: v for k, v in handler_env().items() if k != setting.env.value}  # unset: the function's default
    for cls in FUNCTION_SETTINGS:
        if cls.function is not None and cls.function in setting.functions:
            assert str(getattr(cls.from_env(environment), setting.field)) == str(setting.default_value())


def test_synth_refuses_a_flush_interval_the_worker_would_refuse_naming_the_setting() -> None:
    with pytest.raises(InvalidSetting, match=r"flush_interval_ms \(FLUSH_INTERVAL_MS\) must be 0-2000, got '5000'"):
        StageConfig(name="dev", retain_data=False, log_retention_days=7, flush_interval_ms=5000)
    # 0 (no coalescing) is a value the worker takes, so the stage takes it too.
    assert StageConfig(name="dev", retain_data=False, log_retention_days=7, flush_interval_ms=0).flush_interval_ms == 0


def test_every_rate_limit_of_a_stage_is_checked_at_synth() -> None:
    for setting in STAGE_SETTINGS:
        if setting.kind is Kind.RATE_LIMIT:
            with pytest.raises(InvalidSetting, match=setting.field):
                dataclasses.replace(StageConfig.for_stage("dev"), **{setting.field: "ten per minute"})


def test_each_function_declares_exactly_the_variables_the_table_gives_it() -> None:
    for spec in FUNCTIONS:
        declared = set(spec.env)
        given_by_table = {setting.env for setting in SETTINGS.values() if spec.name in setting.functions}
        assert declared == given_by_table, spec.name


def test_the_stage_sets_every_stage_setting_and_nothing_else() -> None:
    assert set(STAGE_DEFAULTS.environment()) == {setting.env for setting in STAGE_SETTINGS}
    assert STAGE_DEFAULTS.environment()[Env.RATE_LIMIT_SEND_MESSAGE] == "10/30"


def test_a_setting_names_itself_and_its_variable_when_it_refuses_a_value() -> None:
    with pytest.raises(InvalidSetting, match=r"max_waiting_messages \(MAX_WAITING_MESSAGES\) must be >= 1, got '0'"):
        SETTINGS[Env.MAX_WAITING_MESSAGES].parse("0")
    with pytest.raises(InvalidSetting, match=r"model_provider \(MODEL_PROVIDER\) must be one of"):
        SETTINGS[Env.MODEL_PROVIDER].parse("azure")


def test_a_stage_refuses_an_empty_limit() -> None:
    with pytest.raises(InvalidSetting, match="rate_limit_ping"):
        dataclasses.replace(StageConfig.for_stage("dev"), rate_limit_ping="")


def test_a_stage_value_of_the_wrong_type_is_refused_naming_the_setting() -> None:
    # "100" would reach the environment as 100, but the stage's field would hold a string its code does not expect.
    with pytest.raises(InvalidSetting, match="flush_chars"):
        dataclasses.replace(StageConfig.for_stage("dev"), flush_chars="100")
    with pytest.raises(InvalidSetting, match="rate_limit_ping"):
        dataclasses.replace(StageConfig.for_stage("dev"), rate_limit_ping=30)
    with pytest.raises(InvalidSetting, match="retention_days"):
        dataclasses.replace(StageConfig.for_stage("dev"), retention_days=True)
