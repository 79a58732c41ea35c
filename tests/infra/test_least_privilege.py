"""Least privilege, proven both ways: every AWS call the functions made in the integration and e2e tests is allowed
by their own role in the synthesized template, and every grant of those roles is used by some call (or exempted in
``least_privilege.EXEMPTIONS`` with its reason).

The calls are recorded while the integration and e2e tests run (``tests/aws_call_recording.py``; in this process
and in the local stack's containers), and this module runs after every other test of the session: the collection
moves it to the end. Run alone, or with only part of those suites, it checks what was recorded for missing grants and
skips the unused-grant check, which needs all of them. The last tests check the evaluator itself against mutants of
the template, with calls shaped as the recorder writes them.
"""

from __future__ import annotations

import copy
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.application import build
from tests.aws_call_recording import record_dir, recorded_suites_complete
from tests.infra.conftest import SKIP_BUNDLING
from tests.infra.least_privilege import definition_secrets, evaluate, load_records


def _our_handlers(template: dict[str, Any]) -> list[str]:
    # Not the function CDK's BucketDeployment brings to copy the web page at deploy time (aws-cdk-lib's code).
    return sorted(
        r["Properties"]["Handler"]
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and not logical_id.startswith("CustomCDKBucketDeployment")
    )


@pytest.fixture(scope="module")
def template(dev_template: Template) -> dict[str, Any]:
    return dict(dev_template.to_json())


@pytest.fixture(scope="module")
def records(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    found = load_records(record_dir(request.config))
    if not found:
        pytest.skip("no AWS calls recorded: run this with tests/integration and tests/e2e in one session (make test)")
    return found


@pytest.fixture(scope="module")
def definition_template(records: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev stage deployed with an assistant definition whose MCP servers name the secrets the tests' definitions
    named (the stack grants those by name)."""
    from importlib import resources as package_files

    directory = tmp_path_factory.mktemp("definition")
    servers = "".join(
        f'\n[[mcp_servers]]\nname = "s{number}"\nurl = "https://mcp{number}.example.com/mcp"\nsecret = "{name}"\n'
        for number, name in enumerate(definition_secrets(records))
    )
    packaged = package_files.files("assistant").joinpath("assistant.toml").read_text(encoding="utf-8")
    (directory / "assistant.toml").write_text(packaged + servers, encoding="utf-8")
    context = {"stage": "dev", "assistantFile": str(directory / "assistant.toml"), **SKIP_BUNDLING}
    app = cdk.App(outdir=str(directory / "out"), context=context)
    stack = build(app)
    app.synth()
    return dict(Template.from_stack(stack).to_json())


def test_every_recorded_call_is_allowed_by_its_functions_role(
    template: dict[str, Any], records: list[dict[str, Any]], definition_template: dict[str, Any]
) -> None:
    verdict = evaluate(template, records, _our_handlers(template), definition_template=definition_template)
    assert not verdict.missing, "calls the deployed functions would be refused:\n" + "\n".join(verdict.missing)


def test_every_granted_action_is_used(
    template: dict[str, Any],
    records: list[dict[str, Any]],
    definition_template: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    complete = recorded_suites_complete(request.config)
    if not all(complete.values()):
        pytest.skip(f"needs every test of {', '.join(complete)} in this session (ran in full: {complete})")
    verdict = evaluate(template, records, _our_handlers(template), definition_template=definition_template)
    assert not verdict.unused, "grants no recorded call uses:\n" + "\n".join(verdict.unused)


# --- The evaluator against mutants --------------------------------------------------------------------------------


def _call(function: str, service: str, operation: str, **found: Any) -> dict[str, Any]:
    return {"function": function, "service": service, "operation": operation, "resources": found}


def _disconnect_calls() -> list[dict[str, Any]]:
    """What a disconnect does, as recorded: one transaction deleting the record and moving the counter."""
    items = [
        {"kind": "Delete", "table": "t", "env": ["TABLE_NAME"]},
        {"kind": "Update", "table": "t", "env": ["TABLE_NAME"]},
    ]
    return [_call("disconnect.handler", "dynamodb", "TransactWriteItems", items=items)]


def _policy_of(template: dict[str, Any], handler: str) -> dict[str, Any]:
    function = next(r for r in template["Resources"].values() if r["Properties"].get("Handler") == handler)
    role = {"Ref": function["Properties"]["Role"]["Fn::GetAtt"][0]}
    return next(
        r["Properties"]["PolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and role in r["Properties"]["Roles"]
    )


def _dynamodb_statement(document: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in document["Statement"] if "dynamodb" in str(s["Action"]))


def test_a_transaction_item_needs_its_own_action(template: dict[str, Any]) -> None:
    mutant = copy.deepcopy(template)
    statement = _dynamodb_statement(_policy_of(mutant, "disconnect.handler"))
    actions = [a for a in _as_list(statement["Action"]) if a != "dynamodb:UpdateItem"]
    statement["Action"] = actions

    verdict = evaluate(mutant, _disconnect_calls(), ["disconnect.handler"])

    assert any("needs dynamodb:UpdateItem" in m and "Update item" in m for m in verdict.missing), verdict.missing
    assert not any("DeleteItem" in m for m in verdict.missing)


def test_an_unused_grant_is_named_with_its_statement(template: dict[str, Any]) -> None:
    mutant = copy.deepcopy(template)
    statement = _dynamodb_statement(_policy_of(mutant, "disconnect.handler"))
    statement["Action"] = [*_as_list(statement["Action"]), "dynamodb:Scan"]

    verdict = evaluate(mutant, _disconnect_calls(), ["disconnect.handler"])

    assert [u for u in verdict.unused if "dynamodb:Scan" in u], verdict.unused
    assert all(u.startswith("disconnect.handler: grants ") for u in verdict.unused)


def test_a_query_on_an_index_needs_the_index_arn(template: dict[str, Any]) -> None:
    items = [{"kind": "Query", "table": "t", "index": "byCreated", "env": ["TABLE_NAME"]}]
    verdict = evaluate(template, [_call("connect.handler", "dynamodb", "Query", items=items)], ["connect.handler"])
    assert any("/index/byCreated" in m for m in verdict.missing), verdict.missing


def test_a_connection_delete_needs_its_method_in_the_arn(template: dict[str, Any]) -> None:
    api = {"endpoint": "http://127.0.0.1:1/x", "env": ["CALLBACK_URL"], "connection": "{connectionId}"}
    post = _call("worker.handler", "apigatewaymanagementapi", "PostToConnection", api=api)
    delete = _call("worker.handler", "apigatewaymanagementapi", "DeleteConnection", api=api)
    verdict = evaluate(template, [post, delete], ["worker.handler"])
    missing = [m for m in verdict.missing if "execute-api" in m]
    assert missing, verdict.missing
    assert all("/DELETE/@connections/" in m for m in missing), missing


def test_a_resource_no_variable_names_is_a_failure(template: dict[str, Any]) -> None:
    items = [{"kind": "GetItem", "table": "elsewhere", "env": []}]
    verdict = evaluate(template, [_call("connect.handler", "dynamodb", "GetItem", items=items)], ["connect.handler"])
    assert any("'elsewhere'" in m and "no variable" in m for m in verdict.missing), verdict.missing


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
