"""Simulated wall time: a datetime clock that follows Trio's clock, so that under
``trio.testing.MockClock`` (or any Trio clock) the CSMS's and the chargers' timestamps,
offline tolerance, heartbeats and start timeouts all move with simulated time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import trio

__all__ = ["trio_clock"]


def trio_clock(epoch: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock reading ``epoch`` now (call it inside ``trio.run``) and moving with
    ``trio.current_time()`` afterwards. Give it to ``CentralSystem(clock=)``,
    ``serve_backend(clock=)`` and ``Charger(config, clock=)``."""
    if epoch.tzinfo is None:
        raise ValueError("epoch must be timezone-aware")
    start = trio.current_time()

    def now() -> dt.datetime:
        return epoch + dt.timedelta(seconds=trio.current_time() - start)

    return now
