"""A handler's imports without garbage-collection passes: :func:`collection_paused`.

A cold start imports boto3, pydantic, Powertools (and the worker, ``openai``): hundreds of thousands of objects that
live as long as the container. CPython's collector meanwhile runs a pass every few hundred new objects, and as the
heap grows, passes that walk all of it, finding nothing to free (``make bench``, "Cold start", measures what that
costs). So each handler module imports inside :func:`collection_paused`, and collection resumes afterwards.

The first time in a process (a container's init: the handler module's import), what exists is also frozen
(``gc.freeze``: moved where no later pass looks, so the passes during a streaming reply skip it too). Only the first
time: a frozen object is never collected as part of a reference cycle, which is right for what a container imports
at its start and wrong for what a long-lived process (a test run, the local stack) holds when it builds its hundredth
model client. Objects freed by reference counting are freed as always. Standard library only: the authorizer uses
this too.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_freeze_lock = threading.Lock()
_frozen = False


@contextmanager
def collection_paused() -> Iterator[None]:
    """No collection pass inside; afterwards collection resumes (if it was on), and the first time in a process what
    exists is frozen first."""
    global _frozen
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        with _freeze_lock:
            if not _frozen:
                gc.freeze()
                _frozen = True
        if was_enabled:
            gc.enable()
