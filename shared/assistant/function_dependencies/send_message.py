"""What ``send_message`` (``sendMessage``, ``requestUpload``, ``getAttachment``) is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant import clients
from assistant.function_dependencies.parts import connections_api_of, revocation_of
from assistant.refusals import RefusalCounter
from assistant.revocation import RevocationCheck
from assistant.settings import SendMessageSettings

if TYPE_CHECKING:
    from assistant.attachments import UploadService
    from assistant.intake import MessageIntake
    from assistant.stores.batch import ItemReader
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.usage import UsageStore


@dataclass(frozen=True)
class SendMessageDependencies:
    settings: SendMessageSettings
    conversations: ConversationStore
    messages: MessageStore
    usage: UsageStore
    rate_limiter: RateLimiter
    reader: ItemReader
    sqs: Any
    connections_api: Callable[[], Any]
    revocation: RevocationCheck
    uploads: UploadService
    #: Refused frames per connection in this container (a connection that keeps hitting its limits is closed).
    refusals: RefusalCounter = field(default_factory=RefusalCounter)

    def intake(self) -> MessageIntake:
        from assistant.intake import IntakeLimits, MessageIntake
        from assistant.queue import MessageQueue

        settings = self.settings
        return MessageIntake(
            conversations=self.conversations,
            messages=self.messages,
            usage=self.usage,
            rate_limiter=self.rate_limiter,
            reader=self.reader,
            limits=IntakeLimits(
                quotas=settings.quotas(),
                rate_limit=settings.rate_limit_send_message,
                max_waiting=settings.max_waiting_messages,
            ),
            queue=MessageQueue(self.sqs, settings.queue_url),
            uploads=self.uploads,
        )


def send_message(settings: SendMessageSettings) -> SendMessageDependencies:
    from assistant.attachments import AttachmentLimits, UploadService
    from assistant.stores.batch import ItemReader
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.usage import UsageStore

    table = clients.table(settings.table_name, settings.region)
    retention = settings.retention()
    uploads = UploadService(
        table=table,
        s3=clients.s3(settings.region),
        bucket=settings.upload_bucket_name,
        limits=AttachmentLimits(
            max_image_bytes=settings.max_image_bytes,
            max_pdf_bytes=settings.max_pdf_bytes,
            daily_upload_bytes=settings.daily_upload_bytes_quota,
            readable=settings.model_provider.capabilities.reads_attachments,
        ),
    )
    return SendMessageDependencies(
        uploads=uploads,
        settings=settings,
        conversations=ConversationStore(table, retention=retention),
        messages=MessageStore(table, retention=retention),
        usage=UsageStore(table),
        rate_limiter=RateLimiter(table),
        reader=ItemReader(table),
        sqs=clients.sqs(settings.region),
        connections_api=connections_api_of(settings.callback_url),
        revocation=revocation_of(settings),
    )
