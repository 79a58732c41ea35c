"""Operations: where alarms go (an encrypted SNS topic CloudWatch can publish to), the authorizer's alarm, and the
worker's concurrency cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from assistant.wiring import AUTHORIZER, WORKER
from infra.alarms import AUTHORIZER_ERRORS_THRESHOLD
from infra.application import ALARM_EMAIL_CONTEXT_KEY, build, stage_from_context
from infra.names import OutputKey
from infra.stage import StageConfig
from tests.infra.conftest import SKIP_BUNDLING, function_by_handler, only, resources


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _topic_id(template: Template) -> str:
    topic_id, _ = only(template, "AWS::SNS::Topic")
    return topic_id


def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(dev_template: Template) -> None:
    topic = {"Ref": _topic_id(dev_template)}
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm")
    # The dead-letter alarm, the two worker alarms and the authorizer's: the check must not pass on nothing.
    assert len(alarms) >= 4
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"].get("AlarmActions") == [topic], logical_id
        assert alarm["Properties"].get("OKActions") == [topic], logical_id


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(dev_template: Template) -> None:
    _, topic = only(dev_template, "AWS::SNS::Topic")
    key_id, key = only(dev_template, "AWS::KMS::Key")
    # A customer managed key: CloudWatch cannot publish to a topic under the AWS managed alias/aws/sns.
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    cloudwatch_grants = [
        s
        for s in _statements(key["Properties"]["KeyPolicy"])
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch_grants) == 1
    assert cloudwatch_grants[0]["Effect"] == "Allow"
    assert sorted(_as_list(cloudwatch_grants[0]["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_the_topic_refuses_plain_http_and_lets_only_this_accounts_alarms_publish(dev_template: Template) -> None:
    topic = {"Ref": _topic_id(dev_template)}
    _, policy = only(dev_template, "AWS::SNS::TopicPolicy")
    assert policy["Properties"]["Topics"] == [topic]
    statements = _statements(policy["Properties"]["PolicyDocument"])
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert len(deny) == 1
    assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert _as_list(allow[0]["Action"]) == ["sns:Publish"]
    assert allow[0]["Resource"] == topic
    assert allow[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_the_topic_arn_is_an_output(dev_template: Template) -> None:
    outputs = dev_template.find_outputs(OutputKey.ALARM_TOPIC_ARN)
    assert outputs[OutputKey.ALARM_TOPIC_ARN]["Value"] == {"Ref": _topic_id(dev_template)}


def test_without_an_alarm_email_the_topic_has_no_subscription(dev_template: Template) -> None:
    assert resources(dev_template, "AWS::SNS::Subscription") == {}


def test_an_alarm_email_from_context_subscribes_to_the_topic(tmp_path: Path) -> None:
    app = cdk.App(
        outdir=str(tmp_path),
        context={**SKIP_BUNDLING, "stage": "dev", ALARM_EMAIL_CONTEXT_KEY: "ops@example.com"},
    )
    stack = build(app)
    app.synth()  # cdk-nag runs here too: the subscription must not add a finding
    template = Template.from_stack(stack)
    _, subscription = only(template, "AWS::SNS::Subscription")
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    assert subscription["Properties"]["TopicArn"] == {"Ref": _topic_id(template)}


def test_the_alarm_email_comes_from_context_and_is_checked() -> None:
    assert stage_from_context(cdk.App()).alarm_email is None
    app = cdk.App(context={ALARM_EMAIL_CONTEXT_KEY: " ops@example.com "})
    assert stage_from_context(app).alarm_email == "ops@example.com"
    with pytest.raises(ValueError, match="alarm_email"):
        stage_from_context(cdk.App(context={ALARM_EMAIL_CONTEXT_KEY: "not an address"}))


def test_a_failing_authorizer_raises_an_alarm_at_the_first_error(dev_template: Template) -> None:
    authorizer_id, _ = function_by_handler(dev_template, AUTHORIZER.handler)
    on_authorizer = [
        alarm["Properties"]
        for alarm in resources(dev_template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": authorizer_id}}]
    ]
    assert len(on_authorizer) == 1
    alarm = on_authorizer[0]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert alarm["Period"] == 300
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == AUTHORIZER_ERRORS_THRESHOLD == 1
    # No invocations is not an outage.
    assert alarm["TreatMissingData"] == "notBreaching"


def _worker_event_source(template: Template) -> dict[str, Any]:
    worker_id, _ = function_by_handler(template, WORKER.handler)
    # The queue invokes the worker itself, or on a stage with SnapStart its alias (tests/infra/test_snap_start.py).
    targets = {worker_id} | {
        alias_id
        for alias_id, alias in resources(template, "AWS::Lambda::Alias").items()
        if alias["Properties"]["FunctionName"] == {"Ref": worker_id}
    }
    mappings = [
        m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if any(f'{{"Ref": "{target}"}}' in json.dumps(m["Properties"]["FunctionName"]) for target in targets)
    ]
    assert len(mappings) == 1
    return mappings[0]


def test_the_worker_runs_at_most_the_stages_concurrency(dev_template: Template, prod_template: Template) -> None:
    dev, prod = StageConfig.for_stage("dev"), StageConfig.for_stage("prod")
    assert _worker_event_source(dev_template)["ScalingConfig"] == {"MaximumConcurrency": dev.worker_max_concurrency}
    assert _worker_event_source(prod_template)["ScalingConfig"] == {"MaximumConcurrency": prod.worker_max_concurrency}
    assert (dev.worker_max_concurrency, prod.worker_max_concurrency) == (50, 200)


@pytest.mark.parametrize("value", [0, 1, 1001])
def test_a_concurrency_lambda_would_refuse_is_refused_at_synth(value: int) -> None:
    with pytest.raises(ValueError, match="worker_max_concurrency"):
        StageConfig(name="dev", retain_data=False, log_retention_days=7, worker_max_concurrency=value)


@pytest.mark.parametrize("value", [2, 1000])
def test_the_bounds_lambda_accepts_are_accepted(value: int) -> None:
    assert StageConfig(name="dev", retain_data=False, log_retention_days=7, worker_max_concurrency=value)
