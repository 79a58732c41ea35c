"""A Bedrock stage (``--context provider=bedrock``): no model secret, and exactly the IAM that minting a short-term
Bedrock API key and calling the stage's model with it needs, on the worker alone; cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from assistant.wiring import BEDROCK_DEFAULT_MODEL, COMMANDS, FUNCTIONS, WORKER, Env, ModelProvider
from infra.application import build
from infra.names import OutputKey
from infra.stack import AssistantStack
from tests.infra.conftest import SKIP_BUNDLING, assert_cfn_lint_clean, function_by_handler, resources, role_statements

SHORT_TERM_ONLY = {"StringEquals": {"bedrock:bearerTokenType": "SHORT_TERM"}}


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


def test_the_worker_may_mint_keys_and_invoke_exactly_the_stage_model(bedrock: tuple[AssistantStack, Template]) -> None:
    _, template = bedrock
    assert sorted(_model_statements(template, WORKER.handler)) == [
        (["bedrock:CallWithBearerToken"], ["*"], SHORT_TERM_ONLY),
        (
            ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            [f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/{BEDROCK_DEFAULT_MODEL}"],
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
    assert worker["Properties"]["Environment"]["Variables"][Env.MODEL_OVERRIDE.value] == BEDROCK_DEFAULT_MODEL


def test_a_cross_region_inference_profile_is_granted_with_its_foundation_model(tmp_path: Path) -> None:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    _, template = _synth(tmp_path, provider="bedrock", model=model)
    (_, invoke_resources, _) = next(s for s in _model_statements(template, WORKER.handler) if s[2] is None)
    assert invoke_resources == [
        "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/" + model,
        "arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
    ]


def test_bedrock_mantle_grants_its_own_service_on_the_default_project_to_the_callers(tmp_path: Path) -> None:
    _, template = _synth(tmp_path, provider="bedrock-mantle")
    expected = [
        (["bedrock-mantle:CallWithBearerToken"], ["*"], None),
        (
            ["bedrock-mantle:CreateInference"],
            ["arn:${AWS::Partition}:bedrock-mantle:${AWS::Region}:${AWS::AccountId}:project/default"],
            None,
        ),
    ]
    # Background responses: commands may cancel one, so it calls the model too.
    for spec in (WORKER, COMMANDS):
        assert sorted(_model_statements(template, spec.handler)) == expected, spec.name
    assert resources(template, "AWS::SecretsManager::Secret") == {}


def test_cfn_lint_passes_the_bedrock_template(bedrock: tuple[AssistantStack, Template], tmp_path: Path) -> None:
    stack, template = bedrock
    path = tmp_path / stack.template_file
    path.write_text(json.dumps(template.to_json()))
    assert_cfn_lint_clean(path)
