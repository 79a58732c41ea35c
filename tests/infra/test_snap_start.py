"""SnapStart in the template: the production worker's published version behind the ``live`` alias its queue invokes;
no route and not the authorizer; nothing of it on a disposable stage (docs/scaling.md, "SnapStart")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from assistant.wiring import WORKER
from infra.application import build
from infra.functions import LIVE_ALIAS
from tests.infra.conftest import SKIP_BUNDLING, function_by_handler, only, resources, role_statements

SNAP_START_ON_PUBLISHED_VERSIONS = {"ApplyOn": "PublishedVersions"}


def _evaluate(value: Any, refs: dict[str, str]) -> Any:
    """The few intrinsics CDK renders a qualified function name with (``Ref``, ``Fn::Join``, ``Fn::Select``,
    ``Fn::Split``), evaluated with ``refs`` as what each ``Ref`` returns."""
    if not isinstance(value, dict):
        return value
    ((name, argument),) = value.items()
    if name == "Ref":
        return refs[argument]
    if name == "Fn::Join":
        separator, parts = argument
        return separator.join(_evaluate(part, refs) for part in parts)
    if name == "Fn::Select":
        index, items = argument
        return _evaluate(items, refs)[index]
    if name == "Fn::Split":
        separator, text = argument
        return _evaluate(text, refs).split(separator)
    raise AssertionError(f"unexpected intrinsic {name}")


def _referrers(template: Template, logical_id: str) -> set[str]:
    """Logical ids of the resources that reference ``logical_id`` (by ``Ref`` or ``Fn::GetAtt``)."""
    found = set()
    for other_id, resource in template.to_json()["Resources"].items():
        text = json.dumps(resource)
        if f'{{"Ref": "{logical_id}"}}' in text or f'"Fn::GetAtt": ["{logical_id}"' in text:
            found.add(other_id)
    return found


def test_prod_worker_has_snap_start_and_the_routes_and_authorizer_do_not(prod_template: Template) -> None:
    with_snap_start = {
        function["Properties"]["Handler"]: function["Properties"]["SnapStart"]
        for function in resources(prod_template, "AWS::Lambda::Function").values()
        if "SnapStart" in function["Properties"]
    }
    assert with_snap_start == {WORKER.handler: SNAP_START_ON_PUBLISHED_VERSIONS}


def test_prod_queue_invokes_the_live_alias_of_a_published_worker_version(prod_template: Template) -> None:
    worker_id, _ = function_by_handler(prod_template, WORKER.handler)
    version_id, version = only(prod_template, "AWS::Lambda::Version")
    assert version["Properties"]["FunctionName"] == {"Ref": worker_id}
    # A replaced version is deleted, not left behind with a snapshot still cached (and billed).
    assert version["DeletionPolicy"] == "Delete"
    alias_id, alias = only(prod_template, "AWS::Lambda::Alias")
    assert alias["Properties"]["Name"] == LIVE_ALIAS
    assert alias["Properties"]["FunctionName"] == {"Ref": worker_id}
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}

    _, mapping = only(prod_template, "AWS::Lambda::EventSourceMapping")
    alias_arn = f"arn:aws:lambda:us-east-1:123456789012:function:worker-fn:{LIVE_ALIAS}"
    target = _evaluate(mapping["Properties"]["FunctionName"], {alias_id: alias_arn, worker_id: "worker-fn"})
    assert target == f"worker-fn:{LIVE_ALIAS}"  # qualified: the alias, never $LATEST
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The alias is what the queue invokes, and nothing else (integrations and the authorizer call the functions).
    assert _referrers(prod_template, alias_id) == {only(prod_template, "AWS::Lambda::EventSourceMapping")[0]}


def test_prod_worker_may_still_consume_the_queue_and_its_alarm_watches_every_version(
    prod_template: Template,
) -> None:
    actions = {
        action
        for statement in role_statements(prod_template, WORKER.handler)
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= actions
    worker_id, _ = function_by_handler(prod_template, WORKER.handler)
    # The FunctionName dimension alone sums the invocations of every version and alias.
    errors = [
        alarm
        for alarm in resources(prod_template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "Errors"
        and alarm["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": worker_id}}]
    ]
    assert len(errors) == 1


def _assert_without_snap_start(template: Template) -> None:
    """No function snapshots, no published version or alias, and the queue invokes the worker function itself."""
    assert not [f for f in resources(template, "AWS::Lambda::Function").values() if "SnapStart" in f["Properties"]]
    assert resources(template, "AWS::Lambda::Version") == {}
    assert resources(template, "AWS::Lambda::Alias") == {}
    worker_id, _ = function_by_handler(template, WORKER.handler)
    _, mapping = only(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionName"] == {"Ref": worker_id}


def test_dev_has_no_snap_start_version_or_alias(dev_template: Template) -> None:
    _assert_without_snap_start(dev_template)


def test_the_context_turns_snap_start_off_on_prod(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context={**SKIP_BUNDLING, "stage": "prod", "snapStart": "false"})
    _assert_without_snap_start(Template.from_stack(build(app)))


def test_a_bad_snap_start_context_stops_the_synth_before_anything_is_built(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context={**SKIP_BUNDLING, "stage": "dev", "snapStart": "sometimes"})
    with pytest.raises(ValueError, match="snapStart must be true or false, got 'sometimes'"):
        build(app)
