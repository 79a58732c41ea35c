"""A handler's imports without garbage-collection passes: :func:`collection_paused`.

A cold start imports boto3, pydantic, Powertools (and the worker, ``openai``): hundreds of thousands of objects that
live as long as the container. CPython's collector meanwhile runs a pass every few hundred new objects, and as the
heap grows, passes that walk all of it, finding nothing to free: 15-20 % of a handler's import (``make bench``,
"Cold start"). So each handler module imports inside :func:`collection_paused`, which then freezes what was imported
(``gc.freeze``: moved where no later pass looks, so the passes during a streaming reply skip it too) and turns
collection back on for everything after. Objects freed by reference counting are freed as always; only a reference
cycle among the frozen objects would stay, and import-time objects are kept anyway. Standard library only: the
authorizer uses this too.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """No collection pass inside; afterwards, what exists is frozen and collection resumes (if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
