"""Keep garbage-collection pauses short on a CSMS with thousands of connections.

With 10,000 websockets the heap holds millions of tracked objects and a full (gen-2)
collection stops the event loop for half a second or more (measured: up to 560 ms at
5,000 chargers). :func:`tune_gc` leaves the young generations to the automatic collector,
takes the oldest generation out of it, *freezes* the survivors every few seconds
(``gc.freeze``: long-lived connection state stops being scanned), and once in a while
unfreezes and runs one full collection so that no cyclic garbage is kept forever.
"""

from __future__ import annotations

import bisect
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import trio
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("libv4e.gc")


PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GcPauses(Collector):
    """Every garbage collection's pause, per generation, while :meth:`watching`; served
    as the Prometheus histogram ``v4e_gc_pause_seconds`` when registered."""

    def __init__(self) -> None:
        self.counts = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self.max = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info.get("generation", 2)
        self.counts[generation][bisect.bisect_left(PAUSE_BUCKETS, pause)] += 1
        self.sums[generation] += pause
        self.max[generation] = max(self.max[generation], pause)

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def collect(self) -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
        family = HistogramMetricFamily(
            "v4e_gc_pause_seconds", "Garbage-collection pauses", labels=["generation"]
        )
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*PAUSE_BUCKETS, float("inf")), self.counts[generation], strict=True
            ):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            family.add_metric([str(generation)], buckets, self.sums[generation])
        yield family
        longest = GaugeMetricFamily(
            "v4e_gc_pause_max_seconds", "Longest garbage-collection pause", labels=["generation"]
        )
        for generation in range(3):
            longest.add_metric([str(generation)], self.max[generation])
        yield longest

    def summary(self) -> dict[str, Any]:
        """Counts, total and longest pause (ms) per generation."""
        return {
            str(g): {
                "count": sum(self.counts[g]),
                "total_ms": round(self.sums[g] * 1000, 1),
                "max_ms": round(self.max[g] * 1000, 1),
            }
            for g in range(3)
        }


async def tune_gc(
    *, freeze_every: float = 20.0, full_every: float = 900.0, pauses: GcPauses | None = None
) -> None:
    """Run until cancelled (start it in your nursery); restores normal GC on exit. With
    ``pauses``, every collection's pause is recorded there meanwhile."""
    if pauses is not None:
        pauses.start()
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
        if pauses is not None:
            pauses.stop()
