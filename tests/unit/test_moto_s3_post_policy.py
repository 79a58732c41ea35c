"""moto's S3, patched to check a browser-based upload's POST policy as S3 does (scripts.local_stack.aws.moto_patches
.enforce_s3_post_policy): the policies botocore signs pass, and every way S3 refuses a form is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from scripts.chat.terminal import post_upload
from scripts.local_stack.aws.moto_server import FAKE_CREDENTIALS, REGION, MotoServer

BUCKET = "policy-test"
KEY = "uploads/user/u_1"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    server = MotoServer()
    endpoint = server.start()
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, config=Config(signature_version="s3v4"), **FAKE_CREDENTIALS
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        server.stop()


def _post(s3: Any, *, size: int = 5, expires: int = 60) -> dict[str, Any]:
    return dict(
        s3.generate_presigned_post(
            Bucket=BUCKET,
            Key=KEY,
            Fields={"Content-Type": "image/png"},
            Conditions=[{"Content-Type": "image/png"}, ["content-length-range", size, size]],
            ExpiresIn=expires,
        )
    )


def _send(post: dict[str, Any], data: bytes, **fields: str) -> tuple[int, str]:
    return post_upload(post["url"], {**post["fields"], **fields}, "f.png", "image/png", data)


def test_the_signed_form_is_stored(s3: Any) -> None:
    assert _send(_post(s3), b"12345") == (204, "")
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"12345"


@pytest.mark.parametrize(
    ("data", "fields", "status", "code"),
    [
        pytest.param(b"123456", {}, 400, "EntityTooLarge", id="larger"),
        pytest.param(b"1234", {}, 400, "EntityTooSmall", id="smaller"),
        pytest.param(b"12345", {"Content-Type": "text/html"}, 403, "Policy Condition failed", id="another-type"),
        pytest.param(b"12345", {"key": "uploads/other/u_1"}, 403, "Policy Condition failed", id="another-key"),
        pytest.param(b"12345", {"acl": "public-read"}, 403, "Extra input fields: acl", id="unsigned-field"),
        pytest.param(b"12345", {"x-amz-signature": "0" * 64}, 403, "SignatureDoesNotMatch", id="bad-signature"),
    ],
)
def test_what_s3_refuses_is_refused(s3: Any, data: bytes, fields: dict[str, str], status: int, code: str) -> None:
    answer = _send(_post(s3), data, **fields)
    assert answer[0] == status
    assert code in answer[1]


def test_a_policy_edited_by_the_client_fails_its_signature(s3: Any) -> None:
    post = _post(s3)
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    policy["conditions"] = [
        c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")
    ]
    forged = base64.b64encode(json.dumps(policy).encode()).decode()
    status, body = _send(post, b"1" * 100, policy=forged)
    assert (status, "SignatureDoesNotMatch" in body) == (403, True)


def test_an_expired_policy_is_refused(s3: Any) -> None:
    status, body = _send(_post(s3, expires=-1), b"12345")
    assert (status, "Policy expired" in body) == (403, True)
