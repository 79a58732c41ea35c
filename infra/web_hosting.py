"""The chat page (``web/``) on CloudFront from a private S3 bucket, configured from the stack's own outputs.

The bucket is private (every public-access block on, TLS only) and CloudFront reads it through origin access
control, so the page is reachable only through the distribution, over HTTPS. The page's ``config.json`` is written at
deploy time from the same values the stack outputs (``Source.json_data`` resolves the tokens), so a deploy serves a
page that already knows its WebSocket URL and app client: nobody copies URLs around. CloudFront adds the security
headers, among them a Content-Security-Policy that lets the page talk to exactly this stage's WebSocket API and
Cognito's endpoint of its region.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra.stage import StageConfig

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
CONFIG_FILE = "config.json"


def content_security_policy(
    *, websocket_origin: str, cognito_origin: str, attachments_origin: str | None = None
) -> str:
    """The page's CSP: its own scripts and styles only, and connections to this stage's API and Cognito only (and
    its attachments bucket: uploads are posted there, thumbnails read from there; ``blob:`` previews of a file
    before it is sent)."""
    files = f" {attachments_origin}" if attachments_origin else ""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{files}",
            "font-src 'self'",
            f"connect-src 'self' {websocket_origin} {cognito_origin}{files}",
            "object-src 'none'",
            "frame-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


class WebHosting(Construct):
    """``web/`` in a private bucket behind CloudFront (OAC, HTTPS only, security headers); ``url`` is the page."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        config: dict[str, str],
        websocket_origin: str,
        attachments_origin: str | None = None,
        web_dir: Path = WEB_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        region = cdk.Stack.of(self).region
        url_suffix = cdk.Stack.of(self).url_suffix
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Only the page, rebuilt by every deploy: a disposable stage takes it along when deleted (the deployment
            # below empties the bucket first).
            removal_policy=cdk.RemovalPolicy.RETAIN if stage.retain_data else cdk.RemovalPolicy.DESTROY,
        )
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment=f"Chat page security headers, stage {stage.name}",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(
                        websocket_origin=websocket_origin,
                        cognito_origin=f"https://cognito-idp.{region}.{url_suffix}",
                        attachments_origin=attachments_origin,
                    ),
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(365), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
        )
        origin = origins.S3BucketOrigin.with_origin_access_control(self.bucket)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Assistant chat page, stage {stage.name}",
            default_root_object="index.html",
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            additional_behaviors={
                # The page reads it with cache: "no-store"; a redeploy's new config must not wait for an edge cache.
                f"/{CONFIG_FILE}": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    response_headers_policy=self.headers,
                ),
            },
        )
        # The deployment's function gets a role of its own, so it carries no managed policy: logs and the
        # grants BucketDeployment adds (read the asset, write this bucket, invalidate this distribution).
        self.deployment_role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Copies the chat page into its bucket at deploy time",
            inline_policies={
                "Logs": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[
                                cdk.Arn.format(
                                    cdk.ArnComponents(
                                        service="logs",
                                        resource="log-group",
                                        resource_name="/aws/lambda/*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                                    ),
                                    cdk.Stack.of(self),
                                )
                            ],
                        )
                    ]
                )
            },
        )
        self.deployment = s3_deployment.BucketDeployment(
            self,
            "Deployment",
            destination_bucket=self.bucket,
            sources=[
                # A config.json left in web/ by scripts.web_config (for hosting elsewhere) is not this stage's.
                s3_deployment.Source.asset(str(web_dir), exclude=[CONFIG_FILE]),
                s3_deployment.Source.json_data(CONFIG_FILE, config),
            ],
            distribution=self.distribution,
            distribution_paths=["/*"],
            role=self.deployment_role,
            memory_limit=256,
            # Deleting a disposable stage empties the bucket so that it can be deleted too.
            retain_on_delete=stage.retain_data,
        )
        self._narrow_deployment_policy()
        self.url = f"https://{self.distribution.distribution_domain_name}"

    def _narrow_deployment_policy(self) -> None:
        """Rewrite the grants BucketDeployment writes (``s3:GetObject*``, ``s3:List*``, ``s3:DeleteObject*``,
        ``s3:Abort*`` and a few more, CloudFront invalidation on ``*``) to the actions its ``aws s3 sync`` uses and
        this distribution alone: no statement of the stack has a wildcard action."""
        stack = cdk.Stack.of(self)
        policy = self.deployment_role.node.find_child("DefaultPolicy")
        cfn_policy = cast(iam.CfnPolicy, policy.node.default_child)
        document = stack.resolve(cast(iam.Policy, policy).document)
        distribution_arn = stack.format_arn(
            service="cloudfront",
            region="",
            resource="distribution",
            resource_name=self.distribution.distribution_id,
        )
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            narrowed: list[str] = []
            for action in actions:
                for explicit in _EXPLICIT_ACTIONS.get(action, (action,)):
                    if explicit not in narrowed:
                        narrowed.append(explicit)
            statement["Action"] = narrowed
            if statement.get("Resource") == "*" and all(a.startswith("cloudfront:") for a in narrowed):
                statement["Resource"] = stack.resolve(distribution_arn)
        # On the L1 property, not as an override, so that cdk-nag checks what is deployed.
        cfn_policy.policy_document = document


#: What BucketDeployment's grants name with a wildcard, and what its ``aws s3 cp``/``sync`` actually calls.
_EXPLICIT_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3:GetObject*": ("s3:GetObject",),
    "s3:GetBucket*": ("s3:GetBucketLocation",),
    "s3:List*": ("s3:ListBucket",),
    "s3:DeleteObject*": ("s3:DeleteObject",),
    "s3:Abort*": ("s3:AbortMultipartUpload",),
    "s3:PutObjectLegalHold": (),
    "s3:PutObjectRetention": (),
    "s3:PutObjectVersionTagging": (),
}
