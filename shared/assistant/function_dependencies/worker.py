"""What the worker is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant import clients
from assistant.settings import WorkerSettings

if TYPE_CHECKING:
    from assistant.model import ModelClient
    from assistant.push import Broadcaster
    from assistant.reply import ReplyService
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.erasure import UserDataEraser
    from assistant.stores.messages import MessageStore


@dataclass(frozen=True)
class WorkerDependencies:
    settings: WorkerSettings
    sqs: Any
    messages: MessageStore
    connections: ConnectionStore
    broadcaster: Broadcaster
    #: The model client for the current key (``clients.ModelClients``).
    model: Callable[[], ModelClient]
    reply_service: ReplyService
    #: Erases what deleted conversations left (``assistant.queue.EraseRequest`` messages).
    eraser: UserDataEraser


def worker(settings: WorkerSettings) -> WorkerDependencies:
    from assistant.push import Broadcaster
    from assistant.reply import ReplyLimits, ReplyService
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.erasure import UserDataEraser
    from assistant.stores.messages import MessageStore
    from assistant.stores.turns import TurnStore
    from assistant.stores.usage import UsageStore

    table = clients.table(settings.table_name, settings.region)
    retention = settings.retention()
    messages = MessageStore(table, retention=retention)
    connections = ConnectionStore(table)
    broadcaster = Broadcaster(clients.connections_api(settings.callback_url), connections)
    model = clients.ModelClients(settings, model_override=settings.model_override)
    from assistant.attachments import AttachmentFiles

    s3 = clients.s3(settings.region)
    files = AttachmentFiles(
        table=table,
        s3=s3,
        bucket=settings.upload_bucket_name,
        transport=settings.model_provider.capabilities.attachment_transport,
    )
    reply_service = ReplyService(
        files=files,
        messages=messages,
        conversations=ConversationStore(table, retention=retention),
        turns=TurnStore(table),
        usage=UsageStore(table),
        broadcaster=broadcaster,
        model=model,
        limits=ReplyLimits(
            quotas=settings.quotas(),
            flush_interval_s=settings.flush_interval_ms / 1000,
            flush_max_interval_s=settings.flush_max_interval_ms / 1000,
            flush_chars=settings.flush_chars,
            max_receive_count=settings.max_receive_count,
        ),
    )
    return WorkerDependencies(
        settings=settings,
        sqs=clients.sqs(settings.region),
        messages=messages,
        connections=connections,
        broadcaster=broadcaster,
        model=model,
        reply_service=reply_service,
        eraser=UserDataEraser(table, files=files),
    )
