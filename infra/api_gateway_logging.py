"""The account's API Gateway CloudWatch Logs role, without which a WebSocket stage cannot write access logs.

This is a per-account, per-region setting, not a per-stage resource: every stage stack points it at a role of its
own, and both the role and the setting are retained on stack deletion so that destroying ``dev`` never breaks
``prod``'s logging (the same trade-off CDK's ``RestApi`` makes with its ``cloudWatchRole``).

Two details make the first deploy and a later destroy safe:
- The permissions are an *inline* policy of the role (its ``Policies`` property), not a separate
  ``AWS::IAM::Policy``: a separate policy resource would be deleted with the stack while the retained role stayed,
  and the account setting would then point at a role that may no longer write logs, silently, for every stage.
- ``AWS::ApiGateway::Account`` depends on the API: CloudFormation documents that in an account which never had an
  API Gateway resource, the account setting fails unless one exists first (CDK's ``RestApi`` adds the same
  dependency).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct


class ApiGatewayLoggingRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, api: IConstruct) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # The actions of the managed AmazonAPIGatewayPushToCloudWatchLogs policy, narrowed from "*" to log groups
        # of this account and region. The role serves every API in the region, so it cannot name our groups alone.
        push_to_logs = iam.PolicyDocument(
            statements=[
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
            ]
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="Lets API Gateway write access and execution logs in this account and region",
            inline_policies={"PushToCloudWatchLogs": push_to_logs},
        )
        self.role.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        self.account = apigateway.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.account.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        self.account.node.add_dependency(api)
