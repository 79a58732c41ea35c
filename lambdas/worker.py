"""The FIFO consumer: answers each queued message by streaming the model's reply to every tab of its user
(:mod:`assistant.consumer` is the batch handling around it)."""

from __future__ import annotations

from assistant.coldstart import collection_paused

# Imported with garbage collection paused, then frozen: no collection passes over what the container keeps for life
# (assistant.coldstart).
with collection_paused():
    import os

    from assistant.consumer import fifo_consumer
    from assistant.function_dependencies import worker as build
    from assistant.lifecycle import PerContainer
    from assistant.settings import WorkerSettings

    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        # SnapStart (infra.stage.StageConfig.worker_snap_start) snapshots what init did, so the SDK's import (the
        # largest part of the worker's cold start) is paid once per published version instead of at each container's
        # first message. Only the import: clients, the model key and connections are built at the first record, after
        # restore, never into the snapshot.
        import random

        import openai  # noqa: F401

        # Shipped with Lambda's Python runtimes (nothing else imports it, so it is not among our pinned packages).
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]

        # Every container restored from one snapshot would otherwise draw the same retry jitter (ours and the SDK's).
        register_after_restore(random.seed)

#: Built at the first record, kept for the container's life.
dependencies = PerContainer(lambda: build.worker(WorkerSettings.from_env()))

# Looked up at each call (not captured here), as every handler does, so a test can swap the module's dependencies.
handler = fifo_consumer(lambda: dependencies())
