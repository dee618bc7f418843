"""Per-connection flow control for inbound OCPP calls: plain objects, no I/O, no clock.

OCPP-J lets a peer have one CALL outstanding per direction. A connection handles one
inbound call at a time; calls that arrive meanwhile wait in a small bounded buffer
(``FlowControl.backlog``) and a peer that overflows it is disconnected with
:data:`CLOSE_FLOODING`. On top, a token bucket (``rate`` calls per second, bursts of
``burst``) paces how fast one peer's calls are handled: a peer that sends faster waits,
its calls pile up, and past the backlog it is disconnected too.
"""

from __future__ import annotations

import dataclasses

CLOSE_FLOODING = 1008
"""Websocket close code (Policy Violation) for a peer that overflows the call backlog."""


@dataclasses.dataclass(frozen=True, slots=True)
class FlowControl:
    """Limits of one connection's inbound calls (every field has a safe default)."""

    backlog: int = 16
    """Calls that may wait while one is being handled (a compliant peer has none)."""
    rate: float | None = 100.0
    """Calls per second handled in the long run (None: no limit)."""
    burst: int = 500
    """Calls handled back to back before ``rate`` applies (a charger delivering its
    queued transaction messages after a reconnect sends a few hundred at once)."""
    drain: float = 10.0
    """Seconds the calls received before the peer closed may still take to be handled (a
    charger on a Hard reset sends StopTransaction and closes at once: it is recorded,
    only the answer is lost). At most ``backlog`` + 1 calls; past this they are dropped."""

    def __post_init__(self) -> None:
        if self.backlog < 0 or self.burst < 1 or (self.rate is not None and self.rate <= 0):
            raise ValueError("backlog >= 0, burst >= 1 and rate > 0 (or None) are required")
        if not self.drain >= 0:
            raise ValueError("drain >= 0 seconds is required")

    def bucket(self) -> TokenBucket | None:
        """A fresh token bucket for one connection (None when unlimited)."""
        return None if self.rate is None else TokenBucket(self.rate, self.burst)


UNLIMITED = FlowControl(backlog=16, rate=None)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; the caller supplies the time."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens = float(burst)
        self._at: float | None = None

    def take(self, now: float) -> float:
        """Take one token at time ``now``; returns how many seconds to wait first (0 if
        one was available). The token is spent either way."""
        if self._at is None:
            self._at = now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        # the debt is bounded: a budget shared by several connections (one charger id
        # reconnecting) never owes more than one burst
        self._tokens = max(self._tokens - 1.0, -self.burst)
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled by ``now`` (it can be forgotten: a new one is
        the same)."""
        if self._at is None:
            return True
        return self._tokens + (now - self._at) * self.rate >= self.burst
