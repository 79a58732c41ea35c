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

from assistant.wiring import ModelProvider
from infra.bedrock import inference_profile_geography
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
        "MFA is optional (TOTP) rather than required: the chat clients sign in with SRP and have no MFA step "
        "yet. Users can enable TOTP, and per-user daily quotas cap what a stolen "
        "password can spend.",
    )
    _acknowledge(
        user_pool,
        "AwsSolutions-COG8",
        "The Plus feature plan (threat protection) is billed per monthly active user. Self sign-up is off by default, "
        "so an operator creates every user and the pool is not open to mass sign-up or credential stuffing.",
    )
    if stack.openai_secret is not None:
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
    for spec, function in stack.functions.items():
        assert function.role is not None
        reason = (
            "Active tracing (infra/functions.py): xray:PutTraceSegments and xray:PutTelemetryRecords, which CDK adds "
            "for it, support no resource-level permissions, so X-Ray's own documentation grants them on '*'. "
            "Acknowledged on each function's role only; every other statement names its resources."
        )
        _acknowledge(function.role, "AwsSolutions-IAM5[Resource::*]", reason)
        if stack.grants_model_access(spec):
            _acknowledge_cross_region_model(stack, function.role)
    _acknowledge(
        stack.api_gateway_logging.role,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
        "The API Gateway logging role is an account setting shared by every API in this account and region, and "
        "API Gateway creates execution-log groups itself, so it cannot name our log groups alone. It is already "
        "narrowed from the managed policy's '*' to this account's and region's log groups.",
    )
    if stack.web is not None:
        _acknowledge_web_hosting(stack)
    _acknowledge_attachments(stack)


def _acknowledge_attachments(stack: AssistantStack) -> None:
    """The attachments bucket (``infra.attachments``) and the object grants on its two prefixes."""
    _acknowledge(
        stack.attachments.bucket,
        "AwsSolutions-S1",
        "Every request to the bucket is a presigned one the functions signed for one user's own object (a POST "
        "fixed to its key, type and size; a GET of an attached file); the functions log each signing with the "
        "user and upload id. Server access logs would add a second bucket and its retention for no more than that.",
    )
    bucket = stack.attachments.bucket_name.replace(f"{cdk.Aws.ACCOUNT_ID}", "<AWS::AccountId>").replace(
        f"{cdk.Aws.REGION}", "<AWS::Region>"
    )
    reason = (
        "Object actions on one prefix of the attachments bucket, as assistant.wiring's bucket_grants declare per "
        "function: every object under it is a user's upload or file, named by an id generated at requestUpload, "
        "so no finer resource exists at deploy time; each key also carries the user's id, which the functions "
        "check against the caller before they sign or read."
    )
    for spec, function in stack.functions.items():
        for prefix in sorted({grant.prefix for grant in spec.bucket_grants}):
            finding = f"Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*"
            _acknowledge(function.role or function, f"AwsSolutions-IAM5[{finding}]", reason)


def _acknowledge_cross_region_model(stack: AssistantStack, role: IConstruct) -> None:
    """A cross-region inference profile routes each request to a region of its geography that Bedrock picks."""
    model = stack.stage_config.model or ""
    geography = inference_profile_geography(model)
    if stack.stage_config.model_provider is not ModelProvider.BEDROCK or geography is None:
        return
    _acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{model[len(geography) :]}]",
        f"The stage's model {model} is a cross-region inference profile: Bedrock serves each request from a region "
        "of its geography that it picks, and authorizes the foundation model in that region, so the region cannot "
        "be named. Limited to this one model; the profile itself is named with the stack's region and account.",
    )


def _acknowledge_web_hosting(stack: AssistantStack) -> None:
    """The chat page's bucket, distribution and the deployment that copies ``web/`` (``infra.web_hosting``)."""
    assert stack.web is not None
    web = stack.web
    _acknowledge(
        web.bucket,
        "AwsSolutions-S1",
        "The bucket holds only the public chat page, written by the deployment and read only by CloudFront through "
        "origin access control; its requests are CloudFront's, which CloudFront's own metrics already count.",
    )
    _acknowledge(
        web.distribution,
        "AwsSolutions-CFR1",
        "The chat page is served to wherever the stage's users are; who may chat is decided by Cognito sign-in, "
        "not by country.",
    )
    _acknowledge(
        web.distribution,
        "AwsSolutions-CFR2",
        "The distribution serves static files only (GET/HEAD, no origin logic, no forms); the API it talks to is "
        "the WebSocket API, which has its own authorizer, per-user rate limits and quotas. WAF's per-request cost "
        "buys nothing for static files.",
    )
    _acknowledge(
        web.distribution,
        "AwsSolutions-CFR3",
        "Access logs of a static page would need a second bucket with ACLs enabled (CloudFront's standard logs); "
        "the page holds no data, and what users do is logged by the API's access log and the functions.",
    )
    _acknowledge(
        web.distribution,
        "AwsSolutions-CFR4",
        "Without a custom domain the distribution uses CloudFront's default *.cloudfront.net certificate, for which "
        "CloudFront ignores the minimum protocol version; TLSv1.2_2021 is set and applies once a stage adds a domain "
        "and certificate.",
    )
    deployment_role = web.deployment_role
    deployment_reason = (
        "CDK's BucketDeployment copies the page (a zip CDK names by its hash) from the CDK asset bucket into the "
        "page bucket, replacing whatever files the last deploy left: objects of those two buckets only, with "
        "explicit actions (infra.web_hosting narrows CDK's grants). It runs only during a deploy."
    )
    for finding in (
        "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
        f"Resource::<{stack.get_logical_id(cast(CfnElement, web.bucket.node.default_child))}.Arn>/*",
    ):
        _acknowledge(deployment_role, f"AwsSolutions-IAM5[{finding}]", deployment_reason)
    _acknowledge(
        deployment_role,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/*]",
        "BucketDeployment's function is a singleton CDK names at synth, so its log group cannot be named when the "
        "role is made; limited to Lambda's log groups in this account and region.",
    )
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            _acknowledge(
                child,
                "AwsSolutions-L1",
                "The runtime of CDK's BucketDeployment function is chosen by aws-cdk-lib (it ships the AWS CLI layer "
                "for it) and moves with aws-cdk-lib upgrades; it runs only during a deploy.",
            )
