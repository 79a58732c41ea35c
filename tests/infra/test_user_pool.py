"""The user pool and its app client as a stage configures them: token lifetimes, revocation, threat protection."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.stack import AssistantStack
from infra.stage import StageConfig
from tests.infra.conftest import SKIP_BUNDLING, only


def test_tokens_are_short_lived_and_revocable(dev_template: Template) -> None:
    _, client = only(dev_template, "AWS::Cognito::UserPoolClient")
    properties = client["Properties"]
    assert (properties["AccessTokenValidity"], properties["TokenValidityUnits"]["AccessToken"]) == (15, "minutes")
    assert (properties["IdTokenValidity"], properties["TokenValidityUnits"]["IdToken"]) == (15, "minutes")
    assert (properties["RefreshTokenValidity"], properties["TokenValidityUnits"]["RefreshToken"]) == (
        7 * 24 * 60,
        "minutes",
    )
    # RevokeToken (the page's Sign out) needs it; it is also what fails GetUser for the tokens a revoked one issued.
    assert properties["EnableTokenRevocation"] is True


def test_threat_protection_is_on_for_prod_only(dev_template: Template, prod_template: Template) -> None:
    _, dev_pool = only(dev_template, "AWS::Cognito::UserPool")
    assert "UserPoolAddOns" not in dev_pool["Properties"]
    assert dev_pool["Properties"].get("UserPoolTier") in (None, "ESSENTIALS")
    _, prod_pool = only(prod_template, "AWS::Cognito::UserPool")
    assert prod_pool["Properties"]["UserPoolTier"] == "PLUS"
    assert prod_pool["Properties"]["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"


def test_a_stage_sets_its_token_lifetimes(tmp_path: Any) -> None:
    import aws_cdk as cdk

    app = cdk.App(outdir=str(tmp_path), context=SKIP_BUNDLING)
    stage = replace(StageConfig.for_stage("dev"), access_token_validity_minutes=60, refresh_token_validity_days=1)
    template = Template.from_stack(AssistantStack(app, stage=stage))
    _, client = only(template, "AWS::Cognito::UserPoolClient")
    assert client["Properties"]["AccessTokenValidity"] == 60
    assert client["Properties"]["RefreshTokenValidity"] == 24 * 60


@pytest.mark.parametrize(
    "change",
    [
        {"token_recheck_seconds": 0},
        {"token_recheck_seconds": 61},
        {"access_token_validity_minutes": 4},
        {"access_token_validity_minutes": 24 * 60 + 1},
        {"refresh_token_validity_days": 0},
        {"refresh_token_validity_days": 3651},
    ],
)
def test_settings_outside_what_cognito_and_the_promise_allow_are_refused(change: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        replace(StageConfig.for_stage("dev"), **change)
