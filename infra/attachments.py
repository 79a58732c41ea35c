"""The attachments bucket (``assistant.attachments``) and the object permissions a function may get on it.

Private and encrypted (S3-managed keys), every public-access block on, TLS only, objects owned by the bucket;
CORS lets the chat page POST an upload and GET an attachment from its own origin only; a lifecycle rule expires
what stays under ``uploads/`` (files requested but never attached) after a day. The bucket's name is fixed from the
stage, account and region, so the functions' environment and grants, and the page's content security policy, name
it without depending on the bucket resource (whose CORS depends on the page's distribution).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from assistant.wiring import BUCKET, BucketGrant
from infra.retention import removal_policy
from infra.stage import StageConfig


def attachments_bucket_name(stage: str) -> str:
    """Globally unique per stage, account and region (S3 names are global)."""
    return f"gpt-assistant-{stage}-files-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}"


def attachments_origin(stage: str) -> str:
    """The origin the page posts uploads to and reads attachments from (virtual-hosted style)."""
    return f"https://{attachments_bucket_name(stage)}.s3.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}"


class AttachmentsBucket(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, allowed_origins: Sequence[str]
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket_name = attachments_bucket_name(stage.name)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=self.bucket_name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            cors=[
                s3.CorsRule(
                    # A presigned POST of an upload, a presigned GET of an attachment (a thumbnail in history).
                    allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.GET],
                    allowed_origins=list(allowed_origins),
                    allowed_headers=["*"],
                    max_age=3600,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="unattached-uploads",
                    prefix=BUCKET.upload_prefix,
                    expiration=cdk.Duration.days(BUCKET.unattached_expiry_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy(stage),
            # A disposable stage takes its files along when deleted; a retained one keeps them.
            auto_delete_objects=False,
        )

    def object_arn(self, prefix: str) -> str:
        return f"arn:{cdk.Aws.PARTITION}:s3:::{self.bucket_name}/{prefix}*"

    def grant(self, grantee: iam.IGrantable, grants: Iterable[BucketGrant]) -> None:
        """Exactly ``grants`` (a ``FunctionSpec.bucket_grants``): each action on its prefix's objects only."""
        by_action: dict[str, list[str]] = {}
        for grant in grants:
            by_action.setdefault(grant.action.value, []).append(self.object_arn(grant.prefix))
        for action, resources in sorted(by_action.items()):
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(actions=[action], resources=sorted(resources))
            )
