"""The FIFO consumer: answers each queued message by streaming the model's reply to every tab of its user
(:mod:`assistant.consumer` is the batch handling around it)."""

from __future__ import annotations

from assistant import dependencies as build
from assistant.consumer import fifo_consumer
from assistant.lifecycle import PerContainer
from assistant.settings import WorkerSettings

#: Built at the first record, kept for the container's life.
dependencies = PerContainer(lambda: build.worker(WorkerSettings.from_env()))

# Looked up at each call (not captured here), as every handler does, so a test can swap the module's dependencies.
handler = fifo_consumer(lambda: dependencies())
