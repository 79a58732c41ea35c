"""The attachments bucket in synth: private, encrypted, TLS only, CORS for the page's origin only, unattached
uploads expiring after a day; and least privilege: only the intake function (sendMessage, requestUpload,
getAttachment) may put objects under uploads/ (the presigned POST it signs), only the worker reads uploads into
files/ and deletes them, and no function has any other S3 action or any other prefix."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from assistant.wiring import BUCKET, FUNCTIONS, SEND_MESSAGE, WORKER, BucketAction
from tests.infra.conftest import function_by_handler, resources


def _bucket(template: Template) -> dict[str, Any]:
    buckets = [b for b in resources(template, "AWS::S3::Bucket").values() if "files" in json.dumps(b["Properties"])]
    assert len(buckets) == 1
    return buckets[0]["Properties"]


def _s3_grants(template: Template, handler: str) -> set[tuple[str, str]]:
    """(action, prefix) of every S3 statement of the function's role."""
    _, function = function_by_handler(template, handler)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: set[tuple[str, str]] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in (a for a in actions if a.startswith("s3:")):
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                for target in targets:
                    rendered = json.dumps(target)
                    assert statement["Effect"] == "Allow"
                    prefix = next(p for p in (BUCKET.upload_prefix, BUCKET.file_prefix) if f"/{p}*" in rendered)
                    grants.add((action, prefix))
    return grants


def test_the_bucket_is_private_encrypted_tls_only_with_cors_for_the_page_and_an_expiry_for_unattached_uploads(
    dev_template: Template,
) -> None:
    bucket = _bucket(dev_template)
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == BUCKET.upload_prefix
    assert rule["ExpirationInDays"] == BUCKET.unattached_expiry_days
    assert rule["Status"] == "Enabled"
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert sorted(cors["AllowedMethods"]) == ["GET", "POST"]
    # The page's own origin (its CloudFront distribution), never "*".
    (origin,) = cors["AllowedOrigins"]
    assert "*" not in json.dumps(origin)
    assert "Distribution" in json.dumps(origin)
    # TLS only: the bucket policy denies every request without aws:SecureTransport.
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(dev_template, "AWS::S3::BucketPolicy").values()
        if "files" in json.dumps(p["Properties"]["Bucket"]) or "Attachments" in json.dumps(p["Properties"]["Bucket"])
    ]
    assert len(policies) == 1
    (deny,) = [s for s in policies[0] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Action"] == "s3:*"


def test_only_the_intake_signs_uploads_and_only_the_worker_reads_and_moves_files(dev_template: Template) -> None:
    expected = {
        SEND_MESSAGE.handler: {
            (BucketAction.PUT_OBJECT.value, BUCKET.upload_prefix),
            (BucketAction.GET_OBJECT.value, BUCKET.upload_prefix),
            (BucketAction.GET_OBJECT.value, BUCKET.file_prefix),
        },
        WORKER.handler: {
            (BucketAction.GET_OBJECT.value, BUCKET.upload_prefix),
            (BucketAction.DELETE_OBJECT.value, BUCKET.upload_prefix),
            (BucketAction.GET_OBJECT.value, BUCKET.file_prefix),
            (BucketAction.PUT_OBJECT.value, BUCKET.file_prefix),
            (BucketAction.DELETE_OBJECT.value, BUCKET.file_prefix),
        },
    }
    for spec in FUNCTIONS:
        assert _s3_grants(dev_template, spec.handler) == expected.get(spec.handler, set()), spec.name
