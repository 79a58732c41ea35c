"""What ``commands`` is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant import clients
from assistant.function_dependencies.parts import connections_api_of, revocation_of
from assistant.lifecycle import PerContainer
from assistant.refusals import RefusalCounter
from assistant.revocation import RevocationCheck
from assistant.settings import CommandsSettings

if TYPE_CHECKING:
    from assistant.commands import CommandService
    from assistant.model import ModelClient
    from assistant.push import Broadcaster
    from assistant.stores.conversations import ConversationStore
    from assistant.stores.messages import MessageStore
    from assistant.stores.rate_limits import RateLimiter
    from assistant.stores.turns import TurnStore
    from assistant.stores.usage import UsageStore


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
        from assistant.commands import CommandLimits, CommandService, command_rate_limits
        from assistant.environment import SETTINGS
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
                # Each command's bucket, from the setting the table of actions names for it.
                rate_limits=command_rate_limits(lambda env: getattr(settings, SETTINGS[env].field)),
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
    connections_api = connections_api_of(settings.callback_url)
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
        revocation=revocation_of(settings),
        # No cached connection list: a rename must reach a tab opened a moment ago.
        broadcaster=PerContainer(lambda: Broadcaster(connections_api(), connections, cache_seconds=0)),
        sqs=clients.sqs(settings.region),
    )
