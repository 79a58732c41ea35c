from __future__ import annotations

import aws_cdk as cdk
import pytest

from assistant.wiring import STAGE_DEFAULTS
from infra.application import stage_from_context
from infra.names import stack_name
from infra.stage import StageConfig


def test_prod_is_durable_and_other_stages_are_disposable() -> None:
    prod, dev, personal = StageConfig.for_stage("prod"), StageConfig.for_stage("dev"), StageConfig.for_stage("alice")
    assert prod.retain_data
    assert prod.is_production
    assert not dev.retain_data
    assert not dev.is_production
    assert personal.name == "alice"
    assert not personal.retain_data
    assert prod.log_retention_days > dev.log_retention_days
    assert not prod.allow_self_sign_up
    assert not dev.allow_self_sign_up


def test_quotas_and_flushing_start_from_the_wiring_defaults() -> None:
    dev = StageConfig.for_stage("dev")
    assert dev.daily_message_quota == STAGE_DEFAULTS.daily_message_quota
    assert dev.daily_output_token_quota == STAGE_DEFAULTS.daily_output_token_quota
    assert dev.flush_interval_ms == STAGE_DEFAULTS.flush_interval_ms
    assert dev.flush_chars == STAGE_DEFAULTS.flush_chars


@pytest.mark.parametrize("name", ["", "Dev", "dev_1", "1dev", "a" * 21, "dev/prod"])
def test_names_that_cannot_become_stack_or_stage_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="stage"):
        StageConfig.for_stage(name)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="log_retention_days"):
        StageConfig(name="dev", retain_data=False, log_retention_days=8)
    with pytest.raises(ValueError, match="daily_message_quota"):
        StageConfig(name="dev", retain_data=False, log_retention_days=7, daily_message_quota=0)


def test_stage_and_model_come_from_context_with_dev_as_default() -> None:
    assert stage_from_context(cdk.App()).name == "dev"
    prod = stage_from_context(cdk.App(context={"stage": "prod", "model": "gpt-5-mini"}))
    assert prod.name == "prod"
    assert prod.retain_data
    assert prod.model == "gpt-5-mini"
    assert stack_name("prod") == "GptAssistant-prod"


def test_snap_start_is_on_for_the_production_worker_only_by_default() -> None:
    assert StageConfig.for_stage("prod").worker_snap_start
    assert not StageConfig.for_stage("dev").worker_snap_start
    assert not StageConfig.for_stage("alice").worker_snap_start


@pytest.mark.parametrize(
    ("stage", "value", "expected"),
    [
        ("dev", "true", True),
        ("dev", "TRUE", True),
        ("prod", "false", False),
        ("prod", " False ", False),
        # cdk.json's context holds JSON, so a boolean arrives as one.
        ("dev", True, True),
        ("prod", False, False),
    ],
)
def test_snap_start_context_overrides_the_stage_default(stage: str, value: object, expected: bool) -> None:
    app = cdk.App(context={"stage": stage, "snapStart": value})
    assert stage_from_context(app).worker_snap_start is expected


@pytest.mark.parametrize("value", ["yes", "1", "ture", "", "on"])
def test_a_snap_start_context_that_is_not_true_or_false_stops_the_synth(value: str) -> None:
    with pytest.raises(ValueError, match=r"--context snapStart must be true or false, got "):
        stage_from_context(cdk.App(context={"stage": "prod", "snapStart": value}))
