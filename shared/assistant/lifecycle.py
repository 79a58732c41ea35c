"""What a handler builds once per Lambda container: :class:`PerContainer`.

A warm container runs many invocations, so each handler module builds its dependencies (its settings, clients,
stores and services) at its first invocation and keeps them: ``dependencies = PerContainer(build)``. Nothing is
built at import, so a cold start pays only for what the function uses, and nothing is shared between handler
modules: each builds from its own settings. Standard library only: the authorizer imports this too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerContainer(Generic[T]):
    """``build()``'s result, built at the first call and kept for the container's life.

    :meth:`reset` forgets it (the next call builds again, from the environment as it is then): how tests and the
    local stack's thread isolation, which run handlers in their own process, start a fresh "container".
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        # The local stack's thread isolation runs concurrent invocations of one handler in one process.
        self._lock = threading.Lock()

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None
