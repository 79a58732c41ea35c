"""Alarms on the worker beyond the dead-letter queue's (replies that fail for good, a worker that keeps erroring),
and on the authorizer (a failing authorizer refuses every connection). ``infra.operations`` sends them all to the
stage's alarm topic.

A single failed reply is the user's bad luck (they got an `error` frame); several in a few minutes is an outage
(the model is down, the key was revoked, quota ran out upstream) that an operator must hear about before users
complain. Thresholds are deliberately above the noise a retry produces.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from assistant.wiring import WORKER, Metric
from infra.functions import metrics_namespace
from infra.stage import StageConfig

#: Replies that ended in an `error` frame (model failed, output limit, ...), per five minutes.
FAILED_REPLIES_THRESHOLD = 5
#: Worker invocations that raised (each is retried by SQS), per five minutes.
WORKER_ERRORS_THRESHOLD = 10
#: Authorizer invocations that raised, per five minutes. A refused token is a Deny answer, not an error, so users
#: with bad or expired tokens never count here: an error is the authorizer itself failing (the JWKS unreachable, a
#: bug, a timeout), and API Gateway refuses that connection. WebSocket APIs cache no authorizer result, so while it
#: fails *every* connection is refused: the whole assistant is down for everyone. One is enough to look.
AUTHORIZER_ERRORS_THRESHOLD = 1
PERIOD = cdk.Duration.minutes(5)


class WorkerAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig, worker: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        failed_replies = cloudwatch.Metric(
            namespace=metrics_namespace(stage),
            metric_name=Metric.REPLIES_FAILED.value,
            # Powertools adds the service as a dimension; the stack names each function's service after it.
            dimensions_map={"service": WORKER.name},
            statistic=cloudwatch.Stats.SUM,
            period=PERIOD,
        )
        self.failed_replies = cloudwatch.Alarm(
            self,
            "FailedReplies",
            alarm_description=f"{stage.name}: replies are failing (users get error frames); check the worker's logs",
            metric=failed_replies,
            threshold=FAILED_REPLIES_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.worker_errors = cloudwatch.Alarm(
            self,
            "WorkerErrors",
            alarm_description=f"{stage.name}: the worker keeps failing invocations (SQS is retrying them)",
            metric=worker.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            threshold=WORKER_ERRORS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


class AuthorizerAlarms(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, authorizer: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self.authorizer_errors = cloudwatch.Alarm(
            self,
            "AuthorizerErrors",
            alarm_description=f"{stage.name}: the $connect authorizer is failing, so connections are refused; "
            "check the authorizer's logs",
            metric=authorizer.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            threshold=AUTHORIZER_ERRORS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


#: Requests API Gateway refused before any integration ran, per five minutes. WebSocket APIs publish no throttle
#: count of their own: the documented metrics are ConnectCount, MessageCount, IntegrationError, ClientError,
#: ExecutionError and IntegrationLatency, and ClientError is "the number of requests that have a 4XX response
#: returned by API Gateway before the integration is invoked"
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-logging.html). A throttled
#: frame or `$connect` (429) is one; so is a refused token at `$connect` (401/403), which users with stale tabs
#: produce a few of. Well above that noise, a sustained count means the stage's pools (``assistant.stage_throttles``)
#: are being spent: a flood, or real traffic outgrowing them (docs/scaling.md).
THROTTLED_REQUESTS_THRESHOLD = 50


class ThrottleAlarms(Construct):
    """An alarm on requests the WebSocket stage refuses itself (throttled, or refused before the integration)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, api_id: str, stage_name: str
    ) -> None:
        super().__init__(scope, construct_id)
        refused = cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name="ClientError",
            dimensions_map={"ApiId": api_id, "Stage": stage_name},
            statistic=cloudwatch.Stats.SUM,
            period=PERIOD,
        )
        self.throttled_requests = cloudwatch.Alarm(
            self,
            "ThrottledRequests",
            alarm_description=f"{stage.name}: the WebSocket stage is refusing requests before they reach a function "
            "(429 throttled, or 4XX at $connect); every user's frames and connects share these pools. "
            "Check the access log's status and routeKey",
            metric=refused,
            threshold=THROTTLED_REQUESTS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
