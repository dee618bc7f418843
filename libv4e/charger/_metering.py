"""Periodic work and the meter: heartbeats, MeterValues samples, reservation expiry,
and the power a connector gets (its maximum lowered by charging profiles, the EV's limit
and the slow_charging fault)."""

from __future__ import annotations

import math

import trio
from ocpp.v16 import call, enums

from libv4e.charger._base import ChargerState, OutboxItem
from libv4e.charger._model import ChargePointStatus, Meter, profile_limit_w
from libv4e.charger._outbox import Outbox, StatusBoard

SLOW_CHARGING_W = 1400.0


class Metering:
    """The heartbeat and meter loops, the meters, and the power each connector gets."""

    def __init__(self, state: ChargerState, outbox: Outbox, board: StatusBoard) -> None:
        self._state = state
        self._outbox = outbox
        self._board = board
        self._settings_changed = trio.Event()
        self._meter_marks: dict[int, float] = {}  # per connector: trio time of the last look
        self._persisted_at: dict[int, float] = {}  # per connector, trio time

    def wake(self) -> None:
        """A setting changed: the loops start a new interval now."""
        self._settings_changed.set()
        self._settings_changed = trio.Event()

    async def _tick(self, key: str) -> bool:
        """Wait one interval of configuration ``key``; False if the settings changed first
        (or the interval is 0: off), so that a new interval takes effect at once."""
        interval = self._state.configuration.int(key)
        changed = self._settings_changed
        with trio.move_on_after(interval if interval > 0 else 3600):
            await changed.wait()
            return False
        return interval > 0

    async def heartbeat_loop(self) -> None:
        """Heartbeat every HeartbeatInterval seconds, for ever."""
        while True:
            if await self._tick("HeartbeatInterval") and not self._state.faults.silent():
                self._outbox.send(OutboxItem(call.Heartbeat))

    async def meter_loop(self) -> None:
        """Every MeterValueSampleInterval: expire reservations, sample every session."""
        while True:
            if await self._tick("MeterValueSampleInterval"):
                self._board.expire_reservations()
                for connector_id in list(self._state.sessions):
                    self.send_meter_values(connector_id)

    def update_meter(self, connector_id: int) -> Meter:
        """Bring ``connector_id``'s meter up to now (energy at the power it had)."""
        meter = self._state.meters[connector_id]
        now = trio.current_time()
        last = self._meter_marks.get(connector_id, now)
        meter.advance(now - last)
        self._meter_marks[connector_id] = now
        session = self._state.sessions.get(connector_id)
        meter.power_w = self._power_for(connector_id) if session is not None else 0.0
        return meter

    def offered_w(self, connector_id: int) -> float:
        """The power the charger offers a connector: its maximum, lowered by profiles."""
        state = self._state
        maximum = state.config.max_power_kw * 1000.0
        started = state.session_started.get(connector_id, trio.current_time())
        elapsed = trio.current_time() - started
        meter = state.meters[connector_id]
        limits = [maximum]
        for profiles in (state.profiles[0], state.profiles[connector_id]):
            limit = profile_limit_w(profiles, elapsed, meter.voltage_v, meter.phases)
            if limit is not None:
                limits.append(limit)
        return min(limits)

    def _power_for(self, connector_id: int) -> float:
        state = self._state
        if state.connectors[connector_id].status is not ChargePointStatus.charging:
            return 0.0
        power = self.offered_w(connector_id)
        if state.config.ev_max_power_kw is not None:
            power = min(power, state.config.ev_max_power_kw * 1000.0)
        if state.faults.slow_charging(connector_id):
            power = min(power, SLOW_CHARGING_W)
        return power

    def _measurands(self) -> list[str]:
        sampled = self._state.configuration["MeterValuesSampledData"]
        return [m.strip() for m in sampled.split(",") if m.strip()]

    def send_meter_values(
        self,
        connector_id: int,
        context: enums.ReadingContext = enums.ReadingContext.sample_periodic,
    ) -> None:
        """Sample ``connector_id``'s meter and send it (with its transaction, if any)."""
        state = self._state
        meter = self.update_meter(connector_id)
        session = state.sessions.get(connector_id)
        value = meter.sample(
            state.now(), self._measurands(), offered_w=self.offered_w(connector_id), context=context
        )
        if session is None:
            self._outbox.send(OutboxItem(lambda: call.MeterValues(connector_id, [value])))
            return
        state.energy_at[connector_id] = value.timestamp
        now = trio.current_time()
        last = self._persisted_at.get(connector_id, -math.inf)
        if state.config.state_path and now - last >= state.config.persist_min_interval:
            self._persisted_at[connector_id] = now
            state.persist()
        self._outbox.send(
            OutboxItem(
                lambda: call.MeterValues(connector_id, [value], session.transaction_id),
                session=session,
            )
        )
