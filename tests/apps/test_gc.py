"""The GC tuner's pause recorder: real collections, served on /metrics."""

from __future__ import annotations

import gc

import trio

from libv4e_apps.csms.gc import GcPauses, tune_gc
from tests.support import api, running_backend


def test_pauses_are_recorded_per_generation_while_watching():
    pauses = GcPauses()
    pauses.start()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.stop()
    summary = pauses.summary()
    assert summary["0"]["count"] >= 1 and summary["2"]["count"] >= 1
    assert summary["2"]["max_ms"] >= 0
    before = summary["2"]["count"]
    gc.collect()  # not watching any more
    assert pauses.summary()["2"]["count"] == before


async def test_tune_gc_restores_thresholds_and_stops_watching():
    thresholds = gc.get_threshold()
    pauses = GcPauses()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: tune_gc(freeze_every=0.01, pauses=pauses))
        await trio.testing.wait_all_tasks_blocked()  # tune_gc has set the thresholds
        assert gc.get_threshold()[2] == 1_000_000
        gc.collect(0)
        nursery.cancel_scope.cancel()
    assert gc.get_threshold() == thresholds
    assert pauses._callback not in gc.callbacks
    assert pauses.summary()["0"]["count"] >= 1


async def test_backend_serves_gc_pauses_on_metrics(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        gc.collect()
        text = (await client.get("/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith("v4e_gc_pause_seconds_count")]
    assert any('generation="2"' in line and float(line.split()[-1]) >= 1 for line in lines)
