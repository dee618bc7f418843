"""Power over time: a small bounded ring of meter samples per connector (sans-IO).

:class:`MeterHistory` is fed every OCPP message (``observe(record)``, e.g. as a
:meth:`CentralSystem.add_observer` observer) and keeps, per charger and connector, the last
``capacity`` samples from MeterValues (and StopTransaction, whose meter stop ends the curve
at zero power). Nothing is stored: after a restart the curve starts again. The dashboard's
chart and ``GET /chargers/{cp_id}/meter_history`` read it.
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ocpp.v16 import call

from libv4e.csms._as16 import as_16_records
from libv4e.csms._registry import MeterReading, iso, parse_time, read_meter_values
from libv4e.protocol._convert import from_json_payload
from libv4e.protocol._session import MessageType
from libv4e.transport._connection import Direction, MessageRecord

DEFAULT_CAPACITY = 720
"""Samples kept per connector: two hours at the simulator's default 10 s."""
MAX_CONNECTORS = 32
"""Connectors tracked per charger; samples for further connector ids are ignored."""


@dataclasses.dataclass(frozen=True, slots=True)
class MeterSample:
    """One point of a connector's curve (None where the charger did not measure it)."""

    at: dt.datetime
    """When the charger sampled it (its MeterValue timestamp)."""
    received: dt.datetime
    """When the CSMS received it."""
    transaction_id: int | None
    power_w: float | None
    offered_w: float | None
    energy_wh: float | None
    soc_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "at": iso(self.at),
            "received": iso(self.received),
            "transaction_id": self.transaction_id,
            "power_w": self.power_w,
            "offered_w": self.offered_w,
            "energy_wh": self.energy_wh,
            "soc_percent": self.soc_percent,
        }


class _Ring:
    """The last ``capacity`` samples of one connector, packed as doubles (NaN for None):
    56 bytes a sample instead of a few hundred as objects."""

    __slots__ = ("capacity", "data", "next")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = array.array("d")
        self.next = 0  # once full: the oldest sample, overwritten next

    def __len__(self) -> int:
        return len(self.data) // _WIDTH

    def append(self, sample: MeterSample) -> None:
        packed = array.array("d", _pack(sample))
        if len(self) < self.capacity:
            self.data.extend(packed)
        else:
            at = self.next * _WIDTH
            self.data[at : at + _WIDTH] = packed
            self.next = (self.next + 1) % self.capacity

    def __iter__(self) -> Iterator[MeterSample]:
        n = len(self)
        for k in range(n):
            at = ((self.next + k) % n) * _WIDTH
            yield _unpack(self.data[at : at + _WIDTH])

    def last(self) -> MeterSample | None:
        n = len(self)
        if not n:
            return None
        at = ((self.next - 1) % n) * _WIDTH
        return _unpack(self.data[at : at + _WIDTH])


_WIDTH = 7
_NAN = math.nan


def _pack(s: MeterSample) -> tuple[float, ...]:
    def f(value: float | None) -> float:
        return _NAN if value is None else float(value)

    return (
        s.at.timestamp(),
        s.received.timestamp(),
        f(s.transaction_id),
        f(s.power_w),
        f(s.offered_w),
        f(s.energy_wh),
        f(s.soc_percent),
    )


def _unpack(row: Sequence[float]) -> MeterSample:
    def f(value: float) -> float | None:
        return None if math.isnan(value) else value

    tx = f(row[2])
    return MeterSample(
        at=dt.datetime.fromtimestamp(row[0], dt.UTC),
        received=dt.datetime.fromtimestamp(row[1], dt.UTC),
        transaction_id=None if tx is None else int(tx),
        power_w=f(row[3]),
        offered_w=f(row[4]),
        energy_wh=f(row[5]),
        soc_percent=f(row[6]),
    )


class MeterHistory:
    """The last ``capacity`` meter samples of every connector, in arrival order."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        session_of: Callable[[str, str], int | None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._rings: dict[str, dict[int, _Ring]] = {}
        self._session_of = session_of
        """(charger, a 2.0.1 station's own transaction id) → the CSMS's number: a 2.0.1
        station's TransactionEvents are read as MeterValues / StopTransaction (None: a
        2.0.1 station's samples still count, without their session's number)."""

    def __contains__(self, cp_id: object) -> bool:
        return cp_id in self._rings

    def add(self, cp_id: str, connector_id: int, sample: MeterSample) -> bool:
        """Append ``sample``; returns False if the connector is beyond the tracked ones."""
        rings = self._rings.setdefault(cp_id, {})
        ring = rings.get(connector_id)
        if ring is None:
            if len(rings) >= MAX_CONNECTORS:
                return False
            ring = rings[connector_id] = _Ring(self.capacity)
        ring.append(sample)
        return True

    def samples(
        self, cp_id: str, connector_id: int, *, since: dt.datetime | None = None
    ) -> list[MeterSample]:
        """The samples of one connector (received at or after ``since``), oldest first."""
        ring = self._rings.get(cp_id, {}).get(connector_id)
        if ring is None:
            return []
        return [s for s in ring if since is None or s.received >= since]

    def connectors(self, cp_id: str) -> list[int]:
        """The connector ids of ``cp_id`` that have samples, in order."""
        return sorted(self._rings.get(cp_id, {}))

    def forget(self, cp_id: str) -> None:
        """Drop everything kept for ``cp_id``."""
        self._rings.pop(cp_id, None)

    def observe(self, record: MessageRecord) -> None:
        """Take the samples out of one OCPP message (MeterValues or StopTransaction calls
        from a charger; anything else, or a payload that does not parse, is ignored)."""
        if record.direction != Direction.IN or record.message_type != MessageType.CALL:
            return
        if record.action == "TransactionEvent" or (
            record.action == "MeterValues" and "evseId" in (record.payload or {})
        ):  # a 2.0.1 station's: in 1.6 terms
            session_of = self._session_of
            cp_id = record.cp_id
            (record,) = as_16_records(
                [record], lambda tid: None if session_of is None else session_of(cp_id, tid)
            )
        if record.action == "MeterValues":
            self._meter_values(record)
        elif record.action == "StopTransaction":
            self._stop(record)

    def _meter_values(self, record: MessageRecord) -> None:
        payload = dict(record.payload or {})
        if "connectorId" not in payload:  # a 2.0.1 Updated naming no EVSE: its session's
            payload["connectorId"] = self._connector_of(record.cp_id, payload.get("transactionId"))
        try:
            msg = from_json_payload(call.MeterValues, payload)
            connector_id = int(msg.connector_id)
        except Exception:
            return
        for mv in msg.meter_value:
            reading = MeterReading()
            try:
                read_meter_values([mv], reading)
            except Exception:
                continue
            if reading.energy_wh is None and reading.power_w is None:
                continue
            self.add(
                record.cp_id,
                connector_id,
                MeterSample(
                    at=_sane_time(mv.timestamp, record.at),
                    received=record.at,
                    transaction_id=msg.transaction_id,
                    power_w=reading.power_w,
                    offered_w=reading.offered_w,
                    energy_wh=reading.energy_wh,
                    soc_percent=reading.soc_percent,
                ),
            )

    def _connector_of(self, cp_id: str, transaction_id: Any) -> int | None:
        """The connector whose last sample belongs to ``transaction_id``, if any."""
        for connector_id, ring in self._rings.get(cp_id, {}).items():
            last = ring.last()
            if transaction_id is not None and last is not None:
                if last.transaction_id == transaction_id:
                    return connector_id
        return None

    def _stop(self, record: MessageRecord) -> None:
        payload = record.payload
        tx, meter_stop = payload.get("transactionId"), payload.get("meterStop")
        if not isinstance(tx, int) or not isinstance(meter_stop, int | float):
            return
        for connector_id, ring in self._rings.get(record.cp_id, {}).items():
            last = ring.last()
            if last is not None and last.transaction_id == tx:
                self.add(
                    record.cp_id,
                    connector_id,
                    MeterSample(
                        at=_sane_time(payload.get("timestamp"), record.at),
                        received=record.at,
                        transaction_id=tx,
                        power_w=0.0,
                        offered_w=last.offered_w,
                        energy_wh=float(meter_stop),
                    ),
                )
                return


def _sane_time(value: Any, received: dt.datetime) -> dt.datetime:
    """The charger's timestamp, unless it is missing, unparsable or a day away from when
    the message arrived (a charger with a wrong clock): then the arrival time."""
    at = parse_time(value) if isinstance(value, str) else None
    if at is None or abs((at - received).total_seconds()) > 86400:
        return received
    return at
