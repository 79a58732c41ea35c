"""cdk-nag's AWS Solutions checks as a validation plugin, and the findings we accept, each with its reason.

cdk-nag 3 runs when the app synthesizes and fails the synth (``ValidationFailed``) on any unacknowledged finding,
so ``cdk synth`` in CI is the gate. Each acknowledgment names one finding, on the narrowest construct it applies to.
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import Acknowledgment, CfnElement, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infra.stack import AssistantStack


def add_checks(app: cdk.App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def _acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_accepted_findings(stack: AssistantStack) -> None:
    user_pool = stack.users.user_pool
    _acknowledge(
        user_pool,
        "AwsSolutions-COG2",
        "MFA is optional (TOTP) rather than required: the chat clients sign in with USER_PASSWORD_AUTH from a "
        "script and have no MFA step yet. Users can enable TOTP, and per-user daily quotas cap what a stolen "
        "password can spend.",
    )
    _acknowledge(
        user_pool,
        "AwsSolutions-COG8",
        "The Plus feature plan (threat protection) is billed per monthly active user. Self sign-up is off by default, "
        "so an operator creates every user and the pool is not open to mass sign-up or credential stuffing.",
    )
    _acknowledge(
        stack.openai_secret.secret,
        "AwsSolutions-SMG4",
        "The secret holds an OpenAI API key, which only OpenAI can issue, so no rotation Lambda can mint one. To "
        "rotate, issue a new key at OpenAI and run scripts/set_openai_key.py.",
    )
    _acknowledge(
        stack.functions,
        "AwsSolutions-L1",
        "Python 3.13 is a supported Lambda runtime. The dependency layer is built for the cp313 ABI and its binary "
        "wheels (pydantic-core, cryptography, jiter) are tested on it. A runtime upgrade changes RUNTIME and "
        "LAMBDA_TARGET in infra/layers.py together and is its own change.",
    )
    _acknowledge(
        stack.websocket.api,
        "AwsSolutions-APIG4",
        "API Gateway WebSocket APIs accept an authorizer only on $connect, which has a Lambda REQUEST authorizer "
        "verifying the Cognito access token. Every other route runs on a connection that passed it, and the "
        "handlers act only for the user id the authorizer put in the connection's context.",
    )
    stage = stack.stage_config.name
    api_id = stack.get_logical_id(cast(CfnElement, stack.websocket.api.node.default_child))
    _acknowledge(
        stack.functions,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
        f"<{api_id}>/{stage}/POST/@connections/*]",
        "The worker posts to connections whose ids API Gateway assigns at $connect, so the connection id cannot be "
        "named in advance; the resource is already limited to POST on this API's stage.",
    )
    _acknowledge(
        stack.functions,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
        f"<{api_id}>/{stage}/DELETE/@connections/*]",
        "The route functions close the connection whose access token has expired; its id is assigned by API Gateway "
        "at $connect, so it cannot be named in advance. Limited to DELETE on this API's stage.",
    )
    _acknowledge(
        stack.api_gateway_logging.role,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
        "The API Gateway logging role is an account setting shared by every API in this account and region, and "
        "API Gateway creates execution-log groups itself, so it cannot name our log groups alone. It is already "
        "narrowed from the managed policy's '*' to this account's and region's log groups.",
    )
