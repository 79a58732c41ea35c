"""A reply service like another one, with some of its parts replaced: a second worker's store, a dying
broadcaster, a clock a test moves."""

from __future__ import annotations

from typing import Any

from assistant.reply import ReplyService


def replaced(service: ReplyService, **parts: Any) -> ReplyService:
    """``service``'s parts, with ``parts`` (constructor names: messages, broadcaster, model, clock, ...) instead."""
    current = {
        "messages": service._messages,
        "conversations": service._conversations,
        "turns": service._turns,
        "usage": service._usage,
        "broadcaster": service._broadcaster,
        "model": service._model,
        "limits": service._limits,
        "clock": service._clock,
    }
    unknown = parts.keys() - current.keys()
    if unknown:
        raise TypeError(f"ReplyService has no part {sorted(unknown)}")
    return ReplyService(**(current | parts))
