"""The garbage collector's settings for a command's run."""

from __future__ import annotations

import gc

#: Net allocations between collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Freeze what start-up built, and collect the youngest generation less often.

    A sync makes millions of short-lived objects (requests, responses, futures, rows) that
    reference counting frees; the collector only finds cycles. With CPython's defaults it ran
    ~360 collections in a 2,000-project synthetic sync, and each pass of the oldest generation
    walked every object the imports made: 0.15 s of the main process's 3.1 s of CPU. Frozen
    start-up objects are never walked again, and a threshold of 10,000 leaves ~0.03 s
    (benchmarks/README.md), with the same peak RSS: the cycles found are as few as before,
    only found later.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
