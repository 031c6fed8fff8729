"""The cyclic garbage collector, paused where millions of acyclic objects are made."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (as it was before, after it).

    Decoded documents and the rows built from them make no reference cycles and are freed
    by reference counting; the collector would only rescan the live ones again and again,
    at more cost than building them. Whoever pauses it collects now and then itself, for
    the rare cycle (an exception's traceback, say).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
