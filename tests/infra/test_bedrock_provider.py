"""Bedrock stages (``--context provider=bedrock`` and ``provider=bedrock-mantle``): no model secret, no bearer-token
grant, no token generator in the layer, and exactly the IAM that SigV4-signed calls to the stage's model need, on
the functions that make them; cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from assistant.wiring import COMMANDS, FUNCTIONS, WORKER, Env, ModelProvider
from infra.application import build
from infra.layers import CONSTRAINTS, RUNTIME_NO_DEPS_REQUIREMENTS, RUNTIME_REQUIREMENTS
from infra.names import OutputKey
from infra.stack import AssistantStack
from tests.infra.conftest import SKIP_BUNDLING, assert_cfn_lint_clean, function_by_handler, resources, role_statements

RUNTIME_DEFAULT_MODEL = ModelProvider.BEDROCK.capabilities.default_model
MANTLE_DEFAULT_MODEL = ModelProvider.BEDROCK_MANTLE.capabilities.default_model


def _synth(outdir: Path, **context: str) -> tuple[AssistantStack, Template]:
    app = cdk.App(outdir=str(outdir), context={"stage": "dev", **SKIP_BUNDLING, **context})
    stack = build(app)
    app.synth()  # cdk-nag runs here and raises ValidationFailed on any unacknowledged finding
    report = outdir / "validation-report.json"
    if report.exists():
        assert [v for p in json.loads(report.read_text())["pluginReports"] for v in p["violations"]] == []
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def bedrock(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssistantStack, Template]:
    return _synth(tmp_path_factory.mktemp("bedrock"), provider="bedrock")


@pytest.fixture(scope="module")
def mantle(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssistantStack, Template]:
    return _synth(tmp_path_factory.mktemp("mantle"), provider="bedrock-mantle")


def _render(value: Any) -> str:
    """An ARN as text: ``Fn::Join`` of strings and pseudo-parameter ``Ref``s, the way a reader would write it."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_render(part) for part in parts)


def _model_statements(template: Template, spec_handler: str) -> list[tuple[list[str], list[str], Any]]:
    """(actions, resources, condition) of every statement naming a Bedrock action, resources rendered."""
    found = []
    for statement in role_statements(template, spec_handler):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(action.startswith("bedrock") for action in actions):
            listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found.append((sorted(actions), sorted(_render(r) for r in listed), statement.get("Condition")))
    return found


DEFAULT_PROJECT = "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:project/default"
MANTLE_PROJECT = "arn:${AWS::Partition}:bedrock-mantle:${AWS::Region}:${AWS::AccountId}:project/default"


def _all_actions(template: Template) -> list[str]:
    """Every action of every IAM statement in the template."""
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            found.extend(actions if isinstance(actions, list) else [actions])
    return found


def test_the_worker_may_invoke_exactly_the_stage_model(bedrock: tuple[AssistantStack, Template]) -> None:
    _, template = bedrock
    assert sorted(_model_statements(template, WORKER.handler)) == [
        # The Responses API on bedrock-runtime authorizes InvokeModel on the default project besides the model.
        (["bedrock:InvokeModel"], [DEFAULT_PROJECT], None),
        (
            ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            [f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/{RUNTIME_DEFAULT_MODEL}"],
            None,
        ),
    ]
    for spec in FUNCTIONS:
        if spec is not WORKER:
            # Nothing else calls a synchronous server: commands only cancels background responses.
            assert _model_statements(template, spec.handler) == [], spec.name


def test_no_model_secret_is_created_granted_or_named(bedrock: tuple[AssistantStack, Template]) -> None:
    stack, template = bedrock
    assert stack.openai_secret is None
    assert resources(template, "AWS::SecretsManager::Secret") == {}
    for spec in FUNCTIONS:
        for statement in role_statements(template, spec.handler):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action.startswith("secretsmanager:") for action in actions), spec.name
        _, function = function_by_handler(template, spec.handler)
        assert Env.OPENAI_SECRET_NAME.value not in function["Properties"].get("Environment", {}).get("Variables", {})
    assert OutputKey.OPENAI_SECRET_NAME not in template.find_outputs("*")


def test_the_worker_is_told_the_provider_and_the_default_bedrock_model(
    bedrock: tuple[AssistantStack, Template],
) -> None:
    _, template = bedrock
    for spec in (WORKER, COMMANDS):
        _, function = function_by_handler(template, spec.handler)
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[Env.MODEL_PROVIDER.value] == ModelProvider.BEDROCK.value, spec.name
        # The endpoint comes from the function's region at run time, not from the template.
        assert Env.OPENAI_BASE_URL.value not in variables, spec.name
    _, worker = function_by_handler(template, WORKER.handler)
    assert worker["Properties"]["Environment"]["Variables"][Env.MODEL_OVERRIDE.value] == RUNTIME_DEFAULT_MODEL


def test_a_mantle_stage_defaults_to_mantle_s_own_model_id(mantle: tuple[AssistantStack, Template]) -> None:
    """Mantle's ids have no version suffix: the runtime's default would fail every message there."""
    stack, template = mantle
    assert MANTLE_DEFAULT_MODEL != RUNTIME_DEFAULT_MODEL
    assert stack.stage_config.model == MANTLE_DEFAULT_MODEL
    _, worker = function_by_handler(template, WORKER.handler)
    variables = worker["Properties"]["Environment"]["Variables"]
    assert variables[Env.MODEL_OVERRIDE.value] == MANTLE_DEFAULT_MODEL
    assert variables[Env.MODEL_PROVIDER.value] == ModelProvider.BEDROCK_MANTLE.value


def test_an_explicit_model_wins_over_the_profile_default() -> None:
    from infra.stage import StageConfig

    stage = StageConfig(
        name="dev", retain_data=False, log_retention_days=7, model_provider=ModelProvider.BEDROCK_MANTLE
    )
    assert stage.model == MANTLE_DEFAULT_MODEL
    pinned = StageConfig(
        name="dev",
        retain_data=False,
        log_retention_days=7,
        model="openai.gpt-oss-20b",
        model_provider=ModelProvider.BEDROCK,
    )
    assert pinned.model == "openai.gpt-oss-20b"
    assert StageConfig.for_stage("dev").model is None  # OpenAI keeps the packaged definition's model


def test_a_cross_region_inference_profile_is_granted_with_its_foundation_model(tmp_path: Path) -> None:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    _, template = _synth(tmp_path, provider="bedrock", model=model)
    (_, invoke_resources, _) = next(s for s in _model_statements(template, WORKER.handler) if len(s[0]) == 2)
    assert invoke_resources == [
        "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/" + model,
        "arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
    ]


def test_bedrock_mantle_grants_create_read_and_cancel_on_the_default_project(
    mantle: tuple[AssistantStack, Template],
) -> None:
    _, template = mantle
    # The worker creates a response, reads it back after a dropped stream and cancels it on Stop.
    assert _model_statements(template, WORKER.handler) == [
        (
            ["bedrock-mantle:CancelInference", "bedrock-mantle:CreateInference", "bedrock-mantle:GetInference"],
            [MANTLE_PROJECT],
            None,
        )
    ]
    # commands only stops a running background response.
    assert _model_statements(template, COMMANDS.handler) == [
        (["bedrock-mantle:CancelInference"], [MANTLE_PROJECT], None)
    ]
    for spec in FUNCTIONS:
        if spec not in (WORKER, COMMANDS):
            assert _model_statements(template, spec.handler) == [], spec.name
    assert resources(template, "AWS::SecretsManager::Secret") == {}


@pytest.mark.parametrize("stage", ["bedrock", "mantle"])
def test_no_bearer_token_is_granted_anywhere(stage: str, request: pytest.FixtureRequest) -> None:
    """Requests are SigV4-signed with the role: nothing may call Bedrock with an API key."""
    _, template = request.getfixturevalue(stage)
    actions = _all_actions(template)
    assert any(action.startswith("bedrock") for action in actions)  # the check looks at the model grants
    assert not [action for action in actions if action.endswith((":CallWithBearerToken", ":*"))]


def test_the_layer_is_built_without_the_token_generator() -> None:
    """The dependency layer is built from exactly these files (infra.layers); none pins the generator."""
    for requirements in (RUNTIME_REQUIREMENTS, RUNTIME_NO_DEPS_REQUIREMENTS, CONSTRAINTS):
        assert "aws-bedrock-token-generator" not in requirements.read_text().lower(), requirements.name


@pytest.mark.parametrize("stage", ["bedrock", "mantle"])
def test_cfn_lint_passes_the_bedrock_templates(stage: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    stack, template = request.getfixturevalue(stage)
    path = tmp_path / stack.template_file
    path.write_text(json.dumps(template.to_json()))
    assert_cfn_lint_clean(path)
