"""Attachments: images and PDFs uploaded straight to S3, checked at intake, handed to the model by the worker.

The life of a file:

1. ``requestUpload`` (:meth:`UploadService.request`) checks the declared type and size against the stage's limits
   and the user's daily upload volume, records the upload (``UPLOAD#<id>``, expiring with the unattached object) and
   answers a presigned POST whose policy fixes the exact key, the exact ``Content-Type`` and the exact size
   (``content-length-range`` from the size to the size): S3 refuses anything else, so no route ever handles the bytes.
2. ``sendMessage`` with ``attachments`` (:meth:`UploadService.check`) reads each upload's record (it must be the
   user's) and the object's first bytes with one ranged GET, whose ``Content-Range`` also gives the stored size: the
   object must exist, be the declared size and *be* the declared type by its magic number (:func:`sniff`). A kind
   the stage's model cannot read is refused here too (``unsupported_attachment``).
3. The worker (:class:`AttachmentFiles`) moves each upload under ``files/`` (read, write, delete the upload: the
   bucket's lifecycle rule expires what stays under ``uploads/`` after a day), marks the record attached to its
   conversation, and sends the model an ``input_image`` / ``input_file`` part per file, inline or by URL as the
   provider profile says (docs/providers.md).
4. Deleting a conversation deletes its files: the worker's erasure removes every attached upload whose conversation
   is gone (``assistant.stores.erasure``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from assistant.errors import NotFound, QuotaExceeded, TooLarge, UnsupportedAttachment
from assistant.stores.conditions import condition_failed
from assistant.stores.keys import PK, SK, TTL, UPLOAD_PREFIX, key, usage_sk
from assistant.stores.timestamps import iso_utc, utc_day
from assistant.wiring import BUCKET, USAGE_TTL_SECONDS

__all__ = [
    "ALLOWED_TYPES",
    "Attachment",
    "AttachmentFiles",
    "AttachmentLimits",
    "UploadService",
    "file_key",
    "sniff",
    "upload_key",
]

Kind = Literal["image", "pdf"]

#: The content types a user may upload, and the kind of model input each is.
ALLOWED_TYPES: Final[Mapping[str, Kind]] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/webp": "image",
    "image/gif": "image",
    "application/pdf": "pdf",
}
#: How a refusal names each type to a person.
_LABELS: Final[Mapping[str, str]] = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/webp": "WebP image",
    "image/gif": "GIF image",
    "application/pdf": "PDF",
}
#: Bytes :func:`sniff` needs to tell every allowed type apart.
SNIFF_BYTES: Final = 16


def sniff(head: bytes) -> str | None:
    """The content type ``head`` (a file's first bytes) is by its magic number, among :data:`ALLOWED_TYPES`; ``None``
    for anything else. Signatures: PNG (RFC 2083, 3.1), JPEG (SOI marker FF D8 FF), GIF87a/89a, WebP (a RIFF
    container of form type ``WEBP``), PDF (``%PDF-``, ISO 32000-1 7.5.2)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


class Attachment(BaseModel):
    """An attachment of a message: what the queue carries, a turn keeps and ``history`` shows."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    upload_id: str = Field(alias="uploadId")
    file_name: str = Field(alias="fileName")
    content_type: str = Field(alias="contentType")
    size: int

    @property
    def kind(self) -> Kind:
        return ALLOWED_TYPES[self.content_type]

    def to_item(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def upload_key(user_id: str, upload_id: str) -> str:
    """Where the client posts the file (expired by the lifecycle rule unless the worker moves it)."""
    return f"{BUCKET.upload_prefix}{user_id}/{upload_id}"


def file_key(user_id: str, upload_id: str) -> str:
    """Where an attached file is kept, for as long as its conversation."""
    return f"{BUCKET.file_prefix}{user_id}/{upload_id}"


def upload_record_key(user_id: str, upload_id: str) -> dict[str, str]:
    return key(user_id, f"{UPLOAD_PREFIX}{upload_id}")


@dataclass(frozen=True)
class AttachmentLimits:
    max_image_bytes: int
    max_pdf_bytes: int
    daily_upload_bytes: int
    #: The kinds the stage's model reads (``ProviderCapabilities.reads_attachments``).
    readable: tuple[Kind, ...]

    def max_bytes(self, kind: Kind) -> int:
        return self.max_image_bytes if kind == "image" else self.max_pdf_bytes


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


class UploadService:
    """``requestUpload``, the intake's checks of ``sendMessage.attachments``, and ``getAttachment``.

    ``table`` is a boto3 DynamoDB ``Table``; ``s3`` a boto3 S3 client (SigV4, for presigned POSTs)."""

    def __init__(
        self,
        *,
        table: Any,
        s3: Any,
        bucket: str,
        limits: AttachmentLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._s3 = s3
        self._bucket = bucket
        self._limits = limits
        self._clock = clock

    def _kind(self, content_type: str) -> Kind:
        kind = ALLOWED_TYPES.get(content_type)
        if kind is None:
            raise UnsupportedAttachment(
                f"Files of type {content_type!r} cannot be attached; attach a PNG, JPEG, WebP or GIF image or a PDF."
            )
        if kind not in self._limits.readable:
            raise UnsupportedAttachment(
                "This assistant's model cannot read images."
                if kind == "image"
                else "This assistant's model cannot read PDFs."
            )
        return kind

    def request(self, user_id: str, *, upload_id: str, file_name: str, content_type: str, size: int) -> dict[str, Any]:
        """Check, count and record one upload; the presigned POST's ``url``, ``fields`` and ``expiresAt``."""
        kind = self._kind(content_type)
        limit = self._limits.max_bytes(kind)
        if size > limit:
            raise TooLarge(f"The file is {_mib(size)}; {'images' if kind == 'image' else 'PDFs'} may be {_mib(limit)}.")
        now = self._clock()
        self._count_volume(user_id, size, now=now)
        expires = int(now) + BUCKET.upload_url_seconds
        self._table.put_item(
            Item={
                **upload_record_key(user_id, upload_id),
                "fileName": file_name,
                "contentType": content_type,
                "size": size,
                "createdAt": iso_utc(now),
                # Gone with the unattached object (the worker removes the expiry when it attaches the file).
                TTL: int(now) + BUCKET.unattached_expiry_days * 86_400 + 3_600,
            },
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK},
        )
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=upload_key(user_id, upload_id),
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", size, size],
            ],
            ExpiresIn=BUCKET.upload_url_seconds,
        )
        return {"url": post["url"], "fields": dict(post["fields"]), "expires_at": iso_utc(expires)}

    def _count_volume(self, user_id: str, size: int, *, now: float) -> None:
        """Add ``size`` to today's upload volume, refused (``quota_exceeded``) if it would go over the quota."""
        quota = self._limits.daily_upload_bytes
        if size > quota:
            raise QuotaExceeded("The file is larger than the daily upload allowance.")
        try:
            self._table.update_item(
                Key=key(user_id, usage_sk(utc_day(now))),
                UpdateExpression="ADD uploadBytes :size SET #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression="attribute_not_exists(uploadBytes) OR uploadBytes <= :room",
                ExpressionAttributeNames={"#ttl": TTL},
                ExpressionAttributeValues={":size": size, ":room": quota - size, ":ttl": int(now) + USAGE_TTL_SECONDS},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise QuotaExceeded("You have used today's upload allowance. It resets at midnight UTC.") from None
            raise

    def check(self, user_id: str, upload_ids: list[str], records: list[dict[str, Any] | None]) -> list[Attachment]:
        """The intake's checks of a message's attachments (``records``: their upload records as just read)."""
        attachments: list[Attachment] = []
        for upload_id, record in zip(upload_ids, records, strict=True):
            if record is None:
                # Someone else's upload gets the same answer as one that never existed (or expired).
                raise NotFound(f"No such upload: {upload_id}.")
            attachment = Attachment(
                upload_id=upload_id,
                file_name=str(record["fileName"]),
                content_type=str(record["contentType"]),
                size=int(record["size"]),
            )
            self._kind(attachment.content_type)  # the stage's model may have changed since the upload
            if record.get("conversationId"):
                raise NotFound(f"Upload {upload_id} is already attached to a message.")
            head, stored_size = self._head(user_id, upload_id)
            if stored_size != attachment.size:
                raise UnsupportedAttachment(f"{attachment.file_name} is not the size it was declared with.")
            if sniff(head) != attachment.content_type:
                raise UnsupportedAttachment(
                    f"{attachment.file_name} is not the {_LABELS[attachment.content_type]} it was declared as "
                    "(judged by its content)."
                )
            attachments.append(attachment)
        return attachments

    def record_keys(self, user_id: str, upload_ids: list[str]) -> list[dict[str, str]]:
        return [upload_record_key(user_id, upload_id) for upload_id in upload_ids]

    def _head(self, user_id: str, upload_id: str) -> tuple[bytes, int]:
        """The object's first bytes and its stored size (from ``Content-Range``), in one ranged GET."""
        try:
            answer = self._s3.get_object(
                Bucket=self._bucket, Key=upload_key(user_id, upload_id), Range=f"bytes=0-{SNIFF_BYTES - 1}"
            )
        except Exception as exc:
            if _missing(exc):
                raise NotFound(f"Upload {upload_id} has not been uploaded (or has expired).") from None
            raise
        head = answer["Body"].read()
        content_range = str(answer.get("ContentRange") or "")
        size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else int(answer["ContentLength"])
        return head, size

    def link(self, user_id: str, upload_id: str) -> str:
        """``getAttachment``: a presigned GET of an attached file of the user's (``not_found`` for anyone else)."""
        record = self._table.get_item(Key=upload_record_key(user_id, upload_id), ConsistentRead=True).get("Item")
        if record is None or not record.get("conversationId"):
            raise NotFound("No such attachment.")
        return presigned_get(self._s3, self._bucket, file_key(user_id, upload_id), file_name=str(record["fileName"]))


def presigned_get(s3: Any, bucket: str, object_key: str, *, file_name: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": bucket, "Key": object_key}
    if file_name:
        # Shown inline (an image, a PDF), under its own name when saved; quotes and non-ASCII escaped (RFC 6266).
        safe = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in file_name)
        params["ResponseContentDisposition"] = f'inline; filename="{safe}"'
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=BUCKET.download_url_seconds))


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class AttachmentFiles:
    """The worker's side: moves a message's uploads under ``files/``, reads them for the model, deletes them."""

    def __init__(self, *, table: Any, s3: Any, bucket: str, transport: Literal["url", "inline"]) -> None:
        self._table = table
        self._s3 = s3
        self._bucket = bucket
        # A bucket on this machine (the local stack) cannot be fetched by a model elsewhere: send the data inline.
        endpoint = str(getattr(getattr(s3, "meta", None), "endpoint_url", "") or "")
        local = "127.0.0.1" in endpoint or "localhost" in endpoint
        self._transport: Literal["url", "inline"] = "inline" if local else transport

    def attach(self, user_id: str, conversation_id: str, attachment: Attachment) -> bytes:
        """Move the upload under ``files/`` (a redelivery finds it moved already) and mark its record attached;
        returns the file's bytes."""
        try:
            data = self._read(upload_key(user_id, attachment.upload_id))
        except FileNotFoundError:
            data = self._read(file_key(user_id, attachment.upload_id))  # moved by an earlier delivery
        else:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=file_key(user_id, attachment.upload_id),
                Body=data,
                ContentType=attachment.content_type,
            )
            self._s3.delete_object(Bucket=self._bucket, Key=upload_key(user_id, attachment.upload_id))
        try:
            # Attached once: two messages that both passed intake with the same upload before either was answered
            # do not both get it (the second reply fails with not_found instead of sharing a file that would be
            # erased with the other conversation).
            self._table.update_item(
                Key=upload_record_key(user_id, attachment.upload_id),
                UpdateExpression="SET conversationId = :conversation REMOVE #ttl",
                ConditionExpression="attribute_exists(#pk) AND "
                "(attribute_not_exists(conversationId) OR conversationId = :conversation)",
                ExpressionAttributeNames={"#ttl": TTL, "#pk": PK},
                ExpressionAttributeValues={":conversation": conversation_id},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise NotFound(f"{attachment.file_name} is attached to another message already.") from None
            raise
        return data

    def earlier_part(self, user_id: str, attachment: Attachment) -> dict[str, Any] | None:
        """The model part of an earlier turn's file: a fresh link where the provider fetches (nothing downloaded),
        else its bytes inline (``None``: gone, e.g. its conversation is being deleted)."""
        if self._transport == "url":
            return self.model_part(user_id, attachment, b"")
        try:
            data = self._read(file_key(user_id, attachment.upload_id))
        except FileNotFoundError:
            return None
        return self.model_part(user_id, attachment, data)

    def _read(self, object_key: str) -> bytes:
        try:
            return bytes(self._s3.get_object(Bucket=self._bucket, Key=object_key)["Body"].read())
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(object_key) from None
            raise

    def model_part(self, user_id: str, attachment: Attachment, data: bytes) -> dict[str, Any]:
        """The ``input_image`` / ``input_file`` content part the model is sent for one file."""
        if self._transport == "url":
            url = presigned_get(self._s3, self._bucket, file_key(user_id, attachment.upload_id))
        else:
            url = f"data:{attachment.content_type};base64,{base64.b64encode(data).decode('ascii')}"
        if attachment.kind == "image":
            return {"type": "input_image", "image_url": url, "detail": "auto"}
        if self._transport == "url":
            return {"type": "input_file", "file_url": url}
        return {"type": "input_file", "filename": attachment.file_name, "file_data": url}

    def delete(self, user_id: str, upload_id: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=file_key(user_id, upload_id))


def orphan_uploads(items: list[dict[str, Any]], live: set[str]) -> list[tuple[str, dict[str, str]]]:
    """Attached uploads (upload id, record key) whose conversation no longer exists (``assistant.stores.erasure``)."""
    orphans = []
    for item in items:
        conversation = item.get("conversationId")
        if conversation and str(conversation) not in live:
            orphans.append((str(item[SK])[len(UPLOAD_PREFIX) :], {PK: str(item[PK]), SK: str(item[SK])}))
    return orphans
