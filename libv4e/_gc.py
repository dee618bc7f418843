"""Keep garbage-collection pauses short on a CSMS with thousands of connections.

With 10,000 websockets the heap holds millions of tracked objects and a full (gen-2)
collection stops the event loop for half a second or more (measured: up to 560 ms at
5,000 chargers). :func:`tune_gc` leaves the young generations to the automatic collector,
takes the oldest generation out of it, *freezes* the survivors every few seconds
(``gc.freeze``: long-lived connection state stops being scanned), and once in a while
unfreezes and runs one full collection so that no cyclic garbage is kept forever.
"""

from __future__ import annotations

import gc
import logging
import time

import trio

log = logging.getLogger("libv4e.gc")


async def tune_gc(*, freeze_every: float = 20.0, full_every: float = 900.0) -> None:
    """Run until cancelled (start it in your nursery); restores normal GC on exit."""
    last_full = time.monotonic()
    thresholds = gc.get_threshold()
    # young generations as usual; the oldest one only in our own, rare, full collections
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000)
    try:
        while True:
            await trio.sleep(freeze_every)
            if time.monotonic() - last_full >= full_every:
                gc.unfreeze()
                started = time.perf_counter()
                gc.collect()
                last_full = time.monotonic()
                log.info("full collection: %.0f ms", (time.perf_counter() - started) * 1000)
            gc.freeze()
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
