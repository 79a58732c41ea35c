"""What each function is built from: one dataclass and one builder per function, from that function's settings.

A handler module keeps its function's dependencies for the container's life (``assistant.lifecycle.PerContainer``)
and builds them with the builder here at its first invocation. Nothing is shared between functions and nothing is
cached here. The services a route runs are composed from the parts per invocation (cheap: no I/O), so a test that
replaces a part (``dataclasses.replace(deps, sqs=fake)``) gets a service that uses it. Heavy modules are imported
inside the builders: ``openai`` only by the functions that talk to the model, when they first do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from assistant import clients
from assistant.lifecycle import PerContainer
from assistant.refusals import RefusalCounter
from assistant.revocation import RevocationCheck, revocation_check_from_env
from assistant.settings import (
    CommandsSettings,
    ConnectSettings,
    DefaultSettings,
    DisconnectSettings,
    SendMessageSettings,
    WorkerSettings,
)

if TYPE_CHECKING:
    from assistant.attachments import UploadService
    from assistant.commands import CommandService
    from assistant.intake import MessageIntake
    from assistant.model import ModelClient
    from assistant.push import Broadcaster
    from assistant.reply import ReplyService
    from assistant.stores.batch import ItemReader
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.erasure import UserDataEraser
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.turns import TurnStore
    from assistant.stores.usage import UsageStore


def _connections_api(callback_url: str) -> Callable[[], Any]:
    """The ``@connections`` client of a route function, built when first needed: a route uses it only to close a
    connection whose token expired."""
    return PerContainer(lambda: clients.connections_api(callback_url))


def _revocation(settings: DefaultSettings | SendMessageSettings | CommandsSettings) -> RevocationCheck:
    """A route function's check of connections' tokens with Cognito (no I/O until a frame needs an answer)."""
    return revocation_check_from_env(recheck_seconds=settings.token_recheck_seconds)


#: ``$connect``'s or ``$disconnect``'s settings (both read the table; ``$connect`` also its connection cap).
ConnectionSettingsT = TypeVar("ConnectionSettingsT", ConnectSettings, DisconnectSettings)


@dataclass(frozen=True)
class ConnectionDependencies(Generic[ConnectionSettingsT]):
    """What ``$connect`` and ``$disconnect`` use: their settings and the user's connection records."""

    settings: ConnectionSettingsT
    connections: ConnectionStore
    #: ``$connect``'s per-user bucket.
    rate_limiter: RateLimiter


def connection(settings: ConnectionSettingsT) -> ConnectionDependencies[ConnectionSettingsT]:
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.rate_limits import RateLimiter

    table = clients.table(settings.table_name, settings.region)
    return ConnectionDependencies(
        settings=settings, connections=ConnectionStore(table), rate_limiter=RateLimiter(table)
    )


@dataclass(frozen=True)
class DefaultDependencies:
    settings: DefaultSettings
    connections_api: Callable[[], Any]
    revocation: RevocationCheck
    #: Refused frames per connection in this container (a connection that keeps hitting its limits is closed).
    refusals: RefusalCounter = field(default_factory=RefusalCounter)


def default(settings: DefaultSettings) -> DefaultDependencies:
    return DefaultDependencies(
        settings=settings, connections_api=_connections_api(settings.callback_url), revocation=_revocation(settings)
    )


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
        connections_api=_connections_api(settings.callback_url),
        revocation=_revocation(settings),
    )


@dataclass(frozen=True)
class CommandsDependencies:
    settings: CommandsSettings
    conversations: ConversationStore
    turns: TurnStore
    messages: MessageStore
    usage: UsageStore
    rate_limiter: RateLimiter
    #: The model client (``cancel`` stops a running background response), built when first asked for.
    model: Callable[[], ModelClient]
    connections_api: Callable[[], Any]
    revocation: RevocationCheck
    #: Tells the user's other tabs of a rename or a deletion, built when first needed.
    broadcaster: Callable[[], Broadcaster]
    sqs: Any
    #: Refused frames per connection in this container (a connection that keeps hitting its limits is closed).
    refusals: RefusalCounter = field(default_factory=RefusalCounter)

    def commands(self) -> CommandService:
        from assistant.commands import CommandLimits, CommandService
        from assistant.queue import MessageQueue

        settings = self.settings
        return CommandService(
            conversations=self.conversations,
            turns=self.turns,
            messages=self.messages,
            usage=self.usage,
            rate_limiter=self.rate_limiter,
            limits=CommandLimits(
                quotas=settings.quotas(),
                rate_limits={
                    "newConversation": settings.rate_limit_new_conversation,
                    "getHistory": settings.rate_limit_get_history,
                    "listConversations": settings.rate_limit_list_conversations,
                    "cancel": settings.rate_limit_cancel,
                    "ping": settings.rate_limit_ping,
                    "getUsage": settings.rate_limit_get_usage,
                    "renameConversation": settings.rate_limit_rename_conversation,
                    "deleteConversation": settings.rate_limit_delete_conversation,
                    "deleteAllData": settings.rate_limit_delete_all_data,
                },
                max_conversations=settings.max_conversations_per_user,
            ),
            model=self.model if settings.model_provider.capabilities.background else None,
            broadcaster=self.broadcaster,
            queue=MessageQueue(self.sqs, settings.queue_url),
        )


def commands(settings: CommandsSettings) -> CommandsDependencies:
    from assistant.push import Broadcaster
    from assistant.stores.connections import ConnectionStore
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.turns import TurnStore
    from assistant.stores.usage import UsageStore

    table = clients.table(settings.table_name, settings.region)
    retention = settings.retention()
    connections_api = _connections_api(settings.callback_url)
    connections = ConnectionStore(table)
    return CommandsDependencies(
        settings=settings,
        conversations=ConversationStore(table, retention=retention),
        turns=TurnStore(table),
        messages=MessageStore(table, retention=retention),
        usage=UsageStore(table),
        rate_limiter=RateLimiter(table),
        model=clients.ModelClients(settings),
        connections_api=connections_api,
        revocation=_revocation(settings),
        # No cached connection list: a rename must reach a tab opened a moment ago.
        broadcaster=PerContainer(lambda: Broadcaster(connections_api(), connections, cache_seconds=0)),
        sqs=clients.sqs(settings.region),
    )


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
