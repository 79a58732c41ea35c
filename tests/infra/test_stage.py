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
