"""API Gateway's own throttles on the WebSocket stage: the stage's pool, pools of their own for `$connect` and
`sendMessage` (from the one declaration the local gateway reads too), and the alarm on refused requests."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from assistant.stage_throttles import DEV_THROTTLES, OWN_POOL_ROUTES, PROD_THROTTLES, StageThrottles
from infra.alarms import THROTTLED_REQUESTS_THRESHOLD
from tests.infra.conftest import only, resources


def _route_settings(throttles: StageThrottles) -> dict[str, Any]:
    return {
        key: {"ThrottlingRateLimit": t.rate_limit, "ThrottlingBurstLimit": t.burst_limit} for key, t in throttles.routes
    }


@pytest.mark.parametrize(
    ("template_fixture", "throttles"), [("dev_template", DEV_THROTTLES), ("prod_template", PROD_THROTTLES)]
)
def test_connect_and_send_message_have_pools_of_their_own_from_the_stage_declaration(
    template_fixture: str, throttles: StageThrottles, request: pytest.FixtureRequest
) -> None:
    template: Template = request.getfixturevalue(template_fixture)
    _, stage = only(template, "AWS::ApiGatewayV2::Stage")
    properties = stage["Properties"]
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] == throttles.stage.rate_limit
    assert properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] == throttles.stage.burst_limit
    assert {key for key, _ in throttles.routes} == set(OWN_POOL_ROUTES) == {"$connect", "sendMessage"}
    assert properties["RouteSettings"] == _route_settings(throttles)
    # CloudFormation must create the routes before a stage whose settings name them.
    routes = {
        logical_id
        for logical_id, route in resources(template, "AWS::ApiGatewayV2::Route").items()
        if route["Properties"]["RouteKey"] in OWN_POOL_ROUTES
    }
    assert len(routes) == 2
    assert routes <= set(stage.get("DependsOn", []))


def test_prod_pools_are_larger_than_dev_pools() -> None:
    assert PROD_THROTTLES.stage.rate_limit > DEV_THROTTLES.stage.rate_limit
    for key in OWN_POOL_ROUTES:
        prod, dev = PROD_THROTTLES.for_route(key), DEV_THROTTLES.for_route(key)
        assert prod is not None
        assert dev is not None
        assert prod.burst_limit > dev.burst_limit
    assert DEV_THROTTLES.for_route("ping") is None


def test_requests_the_stage_refuses_raise_an_alarm_that_notifies_the_topic(dev_template: Template) -> None:
    api_id, _ = only(dev_template, "AWS::ApiGatewayV2::Api")
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    on_stage = [
        alarm["Properties"]
        for alarm in resources(dev_template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/ApiGateway"
    ]
    assert len(on_stage) == 1
    alarm = on_stage[0]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == ("ClientError", "Sum", 300)
    assert alarm["Dimensions"] == [
        {"Name": "ApiId", "Value": {"Ref": api_id}},
        {"Name": "Stage", "Value": "dev"},
    ]
    assert alarm["Threshold"] == THROTTLED_REQUESTS_THRESHOLD
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": topic_id}] == alarm["OKActions"]
