"""The garbage collector's settings for a command's run (mirror._gc)."""

from __future__ import annotations

import gc

from mirror import _gc


def test_settle_freezes_start_up_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        _gc.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (_gc.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
