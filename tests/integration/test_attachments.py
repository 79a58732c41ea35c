"""Attachments below the protocol, against moto: what requestUpload checks and counts, what the intake checks of an
upload, the sniffer on real files, a profile that reads no files, and the worker's side (moved under files/,
marked attached, sent inline; erased with its conversation)."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

from assistant.attachments import (
    Attachment,
    AttachmentFiles,
    AttachmentLimits,
    UploadService,
    file_key,
    sniff,
    upload_key,
)
from assistant.errors import AssistantError, ErrorCode
from assistant.protocol import SendMessage, parse_client_frame
from assistant.stores.erasure import UserDataEraser
from assistant.token_estimates import IMAGE_TOKENS, PDF_PAGE_TOKENS, request_tokens
from assistant.wiring import ModelProvider
from tests.attachment_files import image_bytes, pdf_bytes
from tests.conftest import REGION

BUCKET = "attachments-test"
USER = "user-1"


@pytest.fixture
def s3(aws: None) -> Any:
    # SigV4, as the functions sign (assistant.clients.s3).
    client = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))
    client.create_bucket(Bucket=BUCKET)
    return client


def _service(table: Any, s3: Any, **limits: Any) -> UploadService:
    settings: dict[str, Any] = {
        "max_image_bytes": 1000,
        "max_pdf_bytes": 5000,
        "daily_upload_bytes": 6000,
        "readable": ("image", "pdf"),
    } | limits
    return UploadService(table=table, s3=s3, bucket=BUCKET, limits=AttachmentLimits(**settings))


def _refused(code: ErrorCode, call: Any) -> str:
    with pytest.raises(AssistantError) as caught:
        call()
    assert caught.value.code is code, caught.value.public_message
    return caught.value.public_message


def _request(service: UploadService, upload_id: str, content_type: str, size: int) -> dict[str, Any]:
    return service.request(USER, upload_id=upload_id, file_name="f", content_type=content_type, size=size)


def test_sniff_tells_every_allowed_type_by_its_bytes_and_nothing_else() -> None:
    assert sniff(image_bytes(2, 2, "PNG")[:16]) == "image/png"
    assert sniff(image_bytes(2, 2, "JPEG")[:16]) == "image/jpeg"
    assert sniff(image_bytes(2, 2, "GIF")[:16]) == "image/gif"
    assert sniff(image_bytes(2, 2, "WEBP")[:16]) == "image/webp"
    assert sniff(pdf_bytes(1)[:16]) == "application/pdf"
    for other in (b"", b"<html>", b"RIFF\x00\x00\x00\x00WAVE", b"\x89PNX", b"GIF90a", b"%PDX-", b"PK\x03\x04"):
        assert sniff(other) is None


def test_request_upload_refuses_types_sizes_and_the_daily_volume(ddb_table: Any, s3: Any) -> None:
    service = _service(ddb_table, s3)
    _refused(ErrorCode.UNSUPPORTED_ATTACHMENT, lambda: _request(service, "u_1", "text/html", 10))
    _refused(ErrorCode.UNSUPPORTED_ATTACHMENT, lambda: _request(service, "u_1", "image/svg+xml", 10))
    _refused(ErrorCode.TOO_LARGE, lambda: _request(service, "u_1", "image/png", 1001))
    _refused(ErrorCode.TOO_LARGE, lambda: _request(service, "u_1", "application/pdf", 5001))
    post = _request(service, "u_1", "image/png", 1000)
    assert post["fields"]["key"] == upload_key(USER, "u_1")
    assert post["fields"]["Content-Type"] == "image/png"
    policy = base64.b64decode(post["fields"]["policy"]).decode()
    assert '["content-length-range", 1000, 1000]' in policy
    _request(service, "u_2", "application/pdf", 5000)  # 6000 bytes today: the quota, exactly
    _refused(ErrorCode.QUOTA_EXCEEDED, lambda: _request(service, "u_3", "image/png", 1))


def test_a_profile_that_reads_no_files_refuses_them_at_intake(ddb_table: Any, s3: Any) -> None:
    readable = ModelProvider.BEDROCK.capabilities.reads_attachments
    assert readable == ()
    service = _service(ddb_table, s3, readable=readable)
    message = _refused(ErrorCode.UNSUPPORTED_ATTACHMENT, lambda: _request(service, "u_1", "image/png", 10))
    assert "cannot read images" in message


def test_the_intake_checks_owner_presence_size_and_content(ddb_table: Any, s3: Any) -> None:
    service = _service(ddb_table, s3)
    png = image_bytes(3, 2)
    _request(service, "u_a", "image/png", len(png))
    records = lambda ids: [ddb_table.get_item(Key=k).get("Item") for k in service.record_keys(USER, ids)]  # noqa: E731
    # Not uploaded yet.
    _refused(ErrorCode.NOT_FOUND, lambda: service.check(USER, ["u_a"], records(["u_a"])))
    # Uploaded with other bytes than it claims (S3's policy fixes the size; moto's in-process mock does not).
    s3.put_object(Bucket=BUCKET, Key=upload_key(USER, "u_a"), Body=b"x" * len(png))
    _refused(ErrorCode.UNSUPPORTED_ATTACHMENT, lambda: service.check(USER, ["u_a"], records(["u_a"])))
    s3.put_object(Bucket=BUCKET, Key=upload_key(USER, "u_a"), Body=png + b"!")
    _refused(ErrorCode.UNSUPPORTED_ATTACHMENT, lambda: service.check(USER, ["u_a"], records(["u_a"])))
    s3.put_object(Bucket=BUCKET, Key=upload_key(USER, "u_a"), Body=png)
    (attachment,) = service.check(USER, ["u_a"], records(["u_a"]))
    assert attachment == Attachment(upload_id="u_a", file_name="f", content_type="image/png", size=len(png))
    # Another user's id: no record under their key.
    other_records = [ddb_table.get_item(Key=k).get("Item") for k in service.record_keys("user-2", ["u_a"])]
    _refused(ErrorCode.NOT_FOUND, lambda: service.check("user-2", ["u_a"], other_records))
    _refused(ErrorCode.NOT_FOUND, lambda: service.link(USER, "u_a"))  # not attached yet: no link


def test_the_worker_moves_sends_inline_and_erases_with_the_conversation(ddb_table: Any, s3: Any) -> None:
    service = _service(ddb_table, s3)
    pdf = pdf_bytes(2)
    _request(service, "u_p", "application/pdf", len(pdf))
    s3.put_object(Bucket=BUCKET, Key=upload_key(USER, "u_p"), Body=pdf)
    attachment = Attachment(upload_id="u_p", file_name="r.pdf", content_type="application/pdf", size=len(pdf))
    files = AttachmentFiles(table=ddb_table, s3=s3, bucket=BUCKET, transport="inline")
    assert files.attach(USER, "c_1", attachment) == pdf
    assert files.attach(USER, "c_1", attachment) == pdf  # a redelivery finds it moved
    _refused(ErrorCode.NOT_FOUND, lambda: files.attach(USER, "c_2", attachment))  # attached once
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/")
    assert s3.get_object(Bucket=BUCKET, Key=file_key(USER, "u_p"))["Body"].read() == pdf
    part = files.model_part(USER, attachment, pdf)
    assert part["type"] == "input_file"
    assert part["filename"] == "r.pdf"
    assert str(part["file_data"]).startswith("data:application/pdf;base64,")
    assert service.link(USER, "u_p").startswith("https://")
    # A provider that fetches URLs (openai) gets a presigned GET of files/, for this file and earlier turns' alike.
    by_url = AttachmentFiles(table=ddb_table, s3=s3, bucket=BUCKET, transport="url")
    for linked in (by_url.model_part(USER, attachment, pdf), by_url.earlier_part(USER, attachment)):
        assert linked is not None
        assert set(linked) == {"type", "file_url"}
        assert f"/{file_key(USER, 'u_p')}?" in str(linked["file_url"])
        assert "X-Amz-Signature=" in str(linked["file_url"])
    assert files.earlier_part(USER, attachment) == part
    # Two pages, counted where a server reports no usage; an image as a 1024x1024 one.
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}, part, image]}
    assert request_tokens(None, [message]) == 2 * PDF_PAGE_TOKENS + IMAGE_TOKENS
    # The conversation is gone (no CONV# record): the eraser deletes the file and its record.
    UserDataEraser(ddb_table, files=files).erase_orphans(USER)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="files/")
    _refused(ErrorCode.NOT_FOUND, lambda: service.link(USER, "u_p"))


def test_send_message_takes_at_most_four_distinct_uploads_and_files_alone() -> None:
    ids = [f"u_{i:024x}" for i in range(5)]
    body = json.dumps({"action": "sendMessage", "message": " ", "attachments": [ids[0]]})
    frame = parse_client_frame(body, max_message_chars=100)
    assert isinstance(frame, SendMessage)
    assert frame.attachments == [ids[0]]
    for bad in (ids, [ids[0], ids[0]], ["u_../../x"], []):
        body = json.dumps({"action": "sendMessage", "message": " ", "attachments": bad})
        _refused(ErrorCode.BAD_REQUEST, lambda body=body: parse_client_frame(body, max_message_chars=100))
