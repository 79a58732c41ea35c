"""The ``send_message`` function's frames: ``sendMessage`` and the two actions of attachments (``requestUpload``,
``getAttachment``), and their answers (``accepted``, ``upload``, ``attachment``). See docs/protocol.md."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from assistant.client_frames import ClientFrameModel, ClientId, clean_name
from assistant.server_frames import ServerFrameModel

#: Attachments one message may carry.
MAX_ATTACHMENTS = 4
#: An upload's id: ``u_`` and 24 hex characters (:func:`new_id`).
UPLOAD_ID_PATTERN = r"^u_[0-9a-f]{24}$"
UploadId = Annotated[str, Field(pattern=UPLOAD_ID_PATTERN)]


class SendMessage(ClientFrameModel):
    action: Literal["sendMessage"]
    #: May be blank only when the message has attachments.
    message: str
    message_id: ClientId | None = Field(default=None, alias="messageId")
    conversation_id: ClientId | None = Field(default=None, alias="conversationId")
    #: Uploads (``requestUpload``) to send with the message, at most 4, each once.
    attachments: list[UploadId] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @model_validator(mode="after")
    def _not_blank(self) -> SendMessage:
        if not self.message.strip() and not self.attachments:
            raise ValueError("message must not be blank")
        if len(set(self.attachments)) != len(self.attachments):
            raise ValueError("an upload may be attached once per message")
        return self


#: A file name as the user's system gave it: 1-255 characters, no control or bidi formatting characters.
MAX_FILE_NAME_CHARS = 255


class RequestUpload(ClientFrameModel):
    """Ask to upload one file: answered with ``upload``, a presigned POST fixed to this exact type and size."""

    action: Literal["requestUpload"]
    file_name: str = Field(alias="fileName", min_length=1, max_length=MAX_FILE_NAME_CHARS)
    #: ``image/png``, ``image/jpeg``, ``image/webp``, ``image/gif`` or ``application/pdf``.
    content_type: str = Field(alias="contentType", max_length=100)
    #: The file's exact size in bytes: the upload is refused by S3 unless it is exactly this.
    size: int = Field(ge=1)

    @field_validator("file_name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        return clean_name("fileName", value)


class GetAttachment(ClientFrameModel):
    """Ask for a short-lived link to one of your attachments: answered with ``attachment``."""

    action: Literal["getAttachment"]
    upload_id: UploadId = Field(alias="uploadId")


class Accepted(ServerFrameModel):
    type: Literal["accepted"] = "accepted"
    message_id: str = Field(alias="messageId")
    conversation_id: str = Field(alias="conversationId")


class UploadFrame(ServerFrameModel):
    """The answer to ``requestUpload``: POST ``fields`` and then the file (as the form's last field, ``file``) to
    ``url`` as ``multipart/form-data`` before ``expiresAt``; then send ``uploadId`` in ``sendMessage.attachments``."""

    type: Literal["upload"] = "upload"
    upload_id: str = Field(alias="uploadId")
    url: str
    fields: dict[str, str]
    #: ISO 8601 UTC.
    expires_at: str = Field(alias="expiresAt")


class AttachmentFrame(ServerFrameModel):
    """The answer to ``getAttachment``: a short-lived link (minutes) to the file's content."""

    type: Literal["attachment"] = "attachment"
    upload_id: str = Field(alias="uploadId")
    url: str
