"""The garbage collector once jobdeck is up: what start-up made is out of its reach."""

from __future__ import annotations

import gc


def settle_garbage_collector() -> None:
    """Move everything alive after start-up (config, workers, modules) out of the
    collector's reach: full collections then walk only what runs create, instead of
    every worker's state (at 10,000 workers, a 60 ms pause that makes schedules late).

    `gc.unfreeze()` puts it back in reach, for a process that goes on after jobdeck.
    """
    gc.collect()
    gc.freeze()
