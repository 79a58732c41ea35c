"""A stage deployed with its own definition (``--context assistantFile=...``) that names MCP servers.

The worker gets ``GetSecretValue`` on exactly the secrets its servers name and no function else does; the
functions that load the definition get the file in a layer and its path in ``ASSISTANT_FILE``; the template still
passes cdk-nag (the synth raises on a finding) and cfn-lint.
"""

from __future__ import annotations

import json
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from assistant.wiring import FUNCTIONS, WORKER, Env
from infra.application import ASSISTANT_FILE_CONTEXT_KEY, build
from infra.definition import DEPLOYED_PATH
from infra.stack import AssistantStack
from tests.infra.conftest import SKIP_BUNDLING, assert_cfn_lint_clean, function_by_handler, role_statements

SECRET = "orders-mcp-token"

MCP_SERVERS = f"""
[[mcp_servers]]
name = "orders"
url = "https://mcp.example.com/mcp"
allowed_tools = ["lookup_order"]
secret = "{SECRET}"

[[mcp_servers]]
name = "public"
url = "https://tools.example.org/mcp"
"""


def _definition(tmp_path: Path, extra: str) -> Path:
    packaged = package_files.files("assistant").joinpath("assistant.toml").read_text(encoding="utf-8")
    path = tmp_path / "my-assistant.toml"
    path.write_text(packaged + extra, encoding="utf-8")
    return path


def _synth(outdir: Path, assistant_file: Path) -> tuple[AssistantStack, Template]:
    context: dict[str, Any] = {"stage": "dev", ASSISTANT_FILE_CONTEXT_KEY: str(assistant_file), **SKIP_BUNDLING}
    app = cdk.App(outdir=str(outdir), context=context)
    stack = build(app)  # with cdk-nag: raises ValidationFailed on any unacknowledged finding
    app.synth()
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssistantStack, Template, Path]:
    workdir = tmp_path_factory.mktemp("mcp-stage")
    stack, template = _synth(workdir / "cdk.out", _definition(workdir, MCP_SERVERS))
    return stack, template, workdir / "cdk.out"


def _mcp_secret_resources(template: Template, handler: str) -> list[str]:
    """The (rendered) resources of every GetSecretValue statement that is not the model key's ``Ref``."""
    found = []
    for statement in role_statements(template, handler):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "secretsmanager:GetSecretValue" not in actions:
            continue
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found += [json.dumps(t) for t in targets if not (isinstance(t, dict) and "Ref" in t)]
    return found


def test_the_worker_may_read_exactly_the_secrets_the_mcp_servers_name(
    synthesized: tuple[AssistantStack, Template, Path],
) -> None:
    _, template, _ = synthesized
    granted = _mcp_secret_resources(template, WORKER.handler)
    # arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-?????? (the six characters AWS appends).
    assert granted == [
        json.dumps(
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":secretsmanager:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        f":secret:{SECRET}-??????",
                    ],
                ]
            }
        )
    ]
    for spec in FUNCTIONS:
        if spec is not WORKER:
            assert _mcp_secret_resources(template, spec.handler) == [], spec.name


def test_the_definition_ships_in_a_layer_for_the_functions_that_load_it(
    synthesized: tuple[AssistantStack, Template, Path],
) -> None:
    stack, template, _ = synthesized
    layer = stack.definition.layer
    assert layer is not None
    layer_id = stack.resolve(layer.layer_version_arn)["Ref"]
    for spec in FUNCTIONS:
        _, function = function_by_handler(template, spec.handler)
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        loads_definition = Env.ASSISTANT_FILE in spec.env
        assert (variables.get(Env.ASSISTANT_FILE.value) == DEPLOYED_PATH) == loads_definition, spec.name
        assert ({"Ref": layer_id} in function["Properties"]["Layers"]) == loads_definition, spec.name


def test_the_template_passes_cfn_lint(synthesized: tuple[AssistantStack, Template, Path]) -> None:
    stack, _, outdir = synthesized
    assert_cfn_lint_clean(outdir / stack.template_file)


def test_the_packaged_definition_grants_no_mcp_secret_and_sets_no_assistant_file(dev_template: Template) -> None:
    assert _mcp_secret_resources(dev_template, WORKER.handler) == []
    _, worker = function_by_handler(dev_template, WORKER.handler)
    assert Env.ASSISTANT_FILE.value not in worker["Properties"]["Environment"]["Variables"]


def test_a_definition_with_a_localhost_mcp_server_is_not_deployed(tmp_path: Path) -> None:
    local = '\n[[mcp_servers]]\nname = "demo"\nurl = "http://127.0.0.1:8765/mcp"\n'
    with pytest.raises(ValueError, match="localhost"):
        _synth(tmp_path / "cdk.out", _definition(tmp_path, local))


def test_an_invalid_definition_fails_the_synth(tmp_path: Path) -> None:
    broken = '\n[[mcp_servers]]\nname = "has space"\nurl = "https://mcp.example.com/mcp"\n'
    with pytest.raises(ValueError, match="mcp_servers"):
        _synth(tmp_path / "cdk.out", _definition(tmp_path, broken))
