"""The account's API Gateway CloudWatch Logs role, without which a WebSocket stage cannot write access logs.

This is a per-account, per-region setting, not a per-stage resource: every stage stack sets it to a role of its
own, and the role is retained on stack deletion so that destroying ``dev`` never breaks ``prod``'s logging (the same
trade-off CDK's ``RestApi`` makes with its ``cloudWatchRole``). One first deploy works in a fresh account.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from constructs import Construct


class ApiGatewayLoggingRole(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="Lets API Gateway write access and execution logs in this account and region",
        )
        # The actions of the managed AmazonAPIGatewayPushToCloudWatchLogs policy, narrowed from "*" to log groups
        # of this account and region. The role serves every API in the region, so it cannot name our groups alone.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                ],
                resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"],
            )
        )
        self.role.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        account = apigateway.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        account.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
