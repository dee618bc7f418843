"""Failed-password throttling, as a plain object with an explicit clock.

Each failed charger authentication is counted against the pair (charge point id, remote
address) and against the remote address alone (without its port). Once either has its
limit of failures within ``window`` seconds, further attempts for that id from that
address, or from that address at all, are refused (HTTP 429, no password check: a PBKDF2
verification costs real CPU) until the oldest failure leaves the window. The guessing
address is throttled, never the id itself: guesses for EVSE001 from other addresses must
not keep the real EVSE001 (right password, its own address) out. A success does not
reset the address count (an attacker with one good charger could otherwise keep
guessing others).
"""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Limits on failed authentications (every field has a safe default)."""

    per_id: int = 5
    """Failures for one charge point id from one address within ``window`` before that
    address is throttled for that id."""
    per_address: int = 20
    """Failures per remote address within ``window`` before it is throttled."""
    window: float = 60.0
    """Seconds a failure counts."""


class FailureThrottle:
    """Counts failures per key (id, address) in a sliding window."""

    def __init__(self, policy: ThrottlePolicy | None = None) -> None:
        self.policy = policy or ThrottlePolicy()
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return collections.deque()
        while stamps and stamps[0] <= now - self.policy.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, cp_id: str, address: str, now: float) -> float:
        """0 if an attempt may proceed, else seconds until it may."""
        waits = []
        for key, limit in (
            (f"id:{cp_id}@{address}", self.policy.per_id),
            ("ip:" + address, self.policy.per_address),
        ):
            stamps = self._recent(key, now)
            if len(stamps) >= limit:
                waits.append(stamps[len(stamps) - limit] + self.policy.window - now)
        return max(waits, default=0.0)

    def failed(self, cp_id: str, address: str, now: float) -> None:
        """Count one failed attempt."""
        for key in (f"id:{cp_id}@{address}", "ip:" + address):
            self._recent(key, now)
            self._failures.setdefault(key, collections.deque()).append(now)

    def __len__(self) -> int:
        return len(self._failures)


def address_of(remote: str) -> str:
    """The host part of ``host:port`` / ``[v6]:port``."""
    if remote.startswith("["):
        return remote[1 : remote.find("]")] if "]" in remote else remote
    host, sep, port = remote.rpartition(":")
    return host if sep and port.isdigit() else remote
