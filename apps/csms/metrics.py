"""Prometheus metrics of a central system, on a registry of its own (no globals)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ocpp.v16.enums import Action
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from libv4e import ErrorCode
from libv4e.protocol import MESSAGE_KINDS, MessageType
from libv4e.transport import Direction, MessageRecord

if TYPE_CHECKING:
    from libv4e.csms import CentralSystem

_KINDS = MESSAGE_KINDS
ACTIONS = frozenset(str(a.value) for a in Action)
"""Label values are a closed set: a peer's made-up action names and error codes become
``other`` (each distinct label value is a time series kept forever)."""
ERROR_CODES = frozenset(str(c.value) for c in ErrorCode)
DIRECTIONS = frozenset(Direction)


def _closed(value: object, allowed: frozenset[str]) -> str:
    text = str(value)
    return text if text in allowed else "other"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StateCollector(Collector):
    def __init__(self, csms: CentralSystem) -> None:
        self.csms = csms

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self.csms.clock()
        yield GaugeMetricFamily(
            "v4e_chargers_connected",
            "Chargers with an open websocket",
            value=len(self.csms.connected_ids),
        )
        yield GaugeMetricFamily(
            "v4e_chargers_online",
            "Chargers connected and heard from within their heartbeat tolerance",
            value=len(self.csms.registry.online_ids(now)),
        )
        yield GaugeMetricFamily(
            "v4e_chargers_known", "Chargers the CSMS knows", value=len(self.csms.registry)
        )
        active = sum(map(len, self.csms.active_transactions().values()))
        yield GaugeMetricFamily(
            "v4e_transactions_active", "Transactions not yet stopped", value=active
        )
        events = CounterMetricFamily(
            "v4e_security_events",
            "SecurityEventNotifications received, by the whitepaper's type (others: other) "
            "and whether the whitepaper marks it critical",
            labels=["type", "critical"],
        )
        for (kind, critical), count in sorted(self.csms.security.event_counts.items()):
            events.add_metric([kind, "true" if critical else "false"], count)
        yield events


class CsmsMetrics:
    """Counters fed by every OCPP message, gauges read from the CSMS at scrape time."""

    def __init__(self, csms: CentralSystem) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "v4e_ocpp_messages",
            "OCPP messages by action, direction and type",
            ["action", "direction", "type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "v4e_ocpp_call_errors",
            "CALLERRORs by code and direction",
            ["code", "direction"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "v4e_ocpp_call_seconds",
            "Round trip of calls the CSMS sends to chargers",
            ["action"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.registry.register(_StateCollector(csms))
        self._sent: dict[tuple[str, str], MessageRecord] = {}
        self._children: dict[tuple[str, str, str], Any] = {}
        csms.messages.add_observer(self.observe)

    def observe(self, record: MessageRecord) -> None:
        """Count one message (and time the CSMS's own calls)."""
        kind = _KINDS.get(record.message_type, "other")
        action = _closed(record.action, ACTIONS) if record.action else "unknown"
        key = (action, _closed(record.direction, DIRECTIONS), kind)
        child = self._children.get(key)
        if child is None:  # labels() is a lookup with locks: do it once per combination
            child = self._children[key] = self.messages.labels(*key)
        child.inc()
        if record.message_type == MessageType.CALLERROR:
            code = _closed(record.payload.get("errorCode"), ERROR_CODES)
            self.errors.labels(code, key[1]).inc()
        call_key = (record.cp_id, record.unique_id)
        if record.direction == Direction.OUT and record.message_type == MessageType.CALL:
            if len(self._sent) > 100_000:  # calls never answered must not pile up
                self._sent.clear()
            self._sent[call_key] = record
        elif record.direction == Direction.IN and record.message_type in (
            MessageType.CALLRESULT,
            MessageType.CALLERROR,
        ):
            sent = self._sent.pop(call_key, None)
            if sent is not None:
                self.latency.labels(action).observe((record.at - sent.at).total_seconds())

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
