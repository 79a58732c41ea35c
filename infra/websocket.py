"""The WebSocket API: routes from ``route_table.ROUTES``, the ``$connect`` authorizer, and the stage clients connect to.

The stage's callback URL and the ``ManageConnections`` grant both come from the same ``WebSocketStage`` object, so
the worker posts to exactly the API and stage it is allowed to, in the same deploy that creates them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from assistant.route_table import ROUTE_SELECTION_EXPRESSION, ROUTES
from assistant.wiring import AUTH_QUERY_PARAMETER, FunctionSpec
from infra.alarms import ThrottleAlarms
from infra.retention import log_retention, removal_policy
from infra.stage import StageConfig

AUTH_IDENTITY_SOURCE: Final = f"route.request.querystring.{AUTH_QUERY_PARAMETER}"

#: One JSON line per request. Only ``$context`` variables that identify the request and its outcome: the access
#: token travels in the query string, and no variable here can contain it.
ACCESS_LOG_FORMAT: Final = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "connectionId": "$context.connectionId",
        "eventType": "$context.eventType",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "requestTime": "$context.requestTime",
        "sourceIp": "$context.identity.sourceIp",
        "principalId": "$context.authorizer.principalId",
        "authorizerError": "$context.authorizer.error",
        "integrationError": "$context.integrationErrorMessage",
        "integrationLatency": "$context.integrationLatency",
        "errorMessage": "$context.error.message",
    },
    separators=(",", ":"),
)


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigateway.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return self._format


class WebSocketGateway(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        function_for: Callable[[FunctionSpec], lambda_.IFunction],
        authorizer_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        integration_for: dict[str, integrations.WebSocketLambdaIntegration] = {}

        def integration(spec: FunctionSpec) -> integrations.WebSocketLambdaIntegration:
            # One integration per function, shared by all its routes (commands serves five).
            if spec.name not in integration_for:
                integration_for[spec.name] = integrations.WebSocketLambdaIntegration(
                    f"{spec.name}-integration", function_for(spec)
                )
            return integration_for[spec.name]

        routes = {route.route_key: route for route in ROUTES}
        connect, disconnect, default = routes.pop("$connect"), routes.pop("$disconnect"), routes.pop("$default")
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=f"gpt-assistant-{stage.name}",
            description=f"GPT assistant ({stage.name}): wss://…/{stage.name}?{AUTH_QUERY_PARAMETER}=<access token>",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration(connect.function),
                authorizer=authorizers.WebSocketLambdaAuthorizer(
                    "ConnectAuthorizer", authorizer_function, identity_source=[AUTH_IDENTITY_SOURCE]
                ),
                return_response=connect.returns_response,
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration(disconnect.function), return_response=disconnect.returns_response
            ),
            default_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration(default.function), return_response=default.returns_response
            ),
        )
        for route in routes.values():
            self.api.add_route(
                route.route_key, integration=integration(route.function), return_response=route.returns_response
            )

        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention(stage), removal_policy=removal_policy(stage)
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            # Part of the protocol (docs/protocol.md): clients connect to wss://…/<stage>.
            stage_name=stage.name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=stage.throttle_rate_limit, burst_limit=stage.throttle_burst_limit
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigateway.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
        )
        self._add_route_throttles(stage)
        # Notified through the stage's alarm topic like every alarm in the stack (infra.operations).
        self.throttle_alarms = ThrottleAlarms(
            self, "ThrottleAlarms", stage=stage, api_id=self.api.api_id, stage_name=self.stage.stage_name
        )

    def _add_route_throttles(self, stage: StageConfig) -> None:
        """``$connect`` and ``sendMessage`` get pools of their own (``RouteSettings``), so a flood of other frames
        cannot stop anyone connecting or sending. The L2 stage has no property for them; the stage must be created
        after the routes it names, or CloudFormation cannot find them."""
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        cfn_stage.route_settings = {
            route_key: {"ThrottlingRateLimit": throttle.rate_limit, "ThrottlingBurstLimit": throttle.burst_limit}
            for route_key, throttle in stage.throttles.routes
        }
        for child in self.api.node.find_all():
            if isinstance(child, apigwv2.CfnRoute):
                cfn_stage.node.add_dependency(child)

    @property
    def url(self) -> str:
        """``wss://…/<stage>``: what clients connect to."""
        return self.stage.url

    @property
    def callback_url(self) -> str:
        """``https://…/<stage>``: the ``@connections`` endpoint of this stage."""
        return self.stage.callback_url

    def grant_manage_connections(self, grantee: iam.IGrantable, *, close: bool = False) -> None:
        """PostToConnection on this API's stage only, and DeleteConnection with ``close``.

        ``WebSocketStage.grant_management_api_access`` would allow every method (``…/<stage>/*/@connections/*``);
        the worker only posts, and only the routes that end an expired connection may close one.
        """
        methods = ("POST", "DELETE") if close else ("POST",)
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["execute-api:ManageConnections"],
                resources=[self.connections_arn(method) for method in methods],
            )
        )

    def connections_arn(self, method: str = "POST") -> str:
        # Connection ids are assigned by API Gateway at $connect, so the last segment cannot be narrower than *.
        return cdk.Stack.of(self).format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{self.stage.stage_name}/{method}/@connections/*",
        )
