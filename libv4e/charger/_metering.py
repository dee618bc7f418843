"""Periodic work and the meter: heartbeats, MeterValues samples, reservation expiry,
and the power a connector gets (its maximum lowered by charging profiles, the EV's limit
and the slow_charging fault)."""

from __future__ import annotations

import math

import trio
from ocpp.v16 import call, enums

from libv4e.charger._base import OutboxItem
from libv4e.charger._model import ChargePointStatus, Meter, profile_limit_w
from libv4e.charger._outbox import OutboxCharger

SLOW_CHARGING_W = 1400.0


class MeteringCharger(OutboxCharger):
    """The heartbeat and meter loops and smart charging."""

    def _wake(self) -> None:
        self._settings_changed.set()
        self._settings_changed = trio.Event()

    async def _tick(self, key: str) -> bool:
        """Wait one interval of configuration ``key``; False if the settings changed first
        (or the interval is 0: off), so that a new interval takes effect at once."""
        interval = self.configuration.int(key)
        changed = self._settings_changed
        with trio.move_on_after(interval if interval > 0 else 3600):
            await changed.wait()
            return False
        return interval > 0

    async def _heartbeat_loop(self) -> None:
        while True:
            if await self._tick("HeartbeatInterval") and not self.faults.silent():
                self._send(OutboxItem(call.Heartbeat))

    async def _meter_loop(self) -> None:
        while True:
            if await self._tick("MeterValueSampleInterval"):
                self._expire_reservations()
                for connector_id in list(self.sessions):
                    self._send_meter_values(connector_id)

    def _update_meter(self, connector_id: int) -> Meter:
        meter = self.meters[connector_id]
        now = trio.current_time()
        last = self._meter_marks.get(connector_id, now)
        meter.advance(now - last)
        self._meter_marks[connector_id] = now
        session = self.sessions.get(connector_id)
        meter.power_w = self._power_for(connector_id) if session is not None else 0.0
        return meter

    def offered_w(self, connector_id: int) -> float:
        """The power the charger offers a connector: its maximum, lowered by profiles."""
        maximum = self.config.max_power_kw * 1000.0
        started = self._session_started.get(connector_id, trio.current_time())
        elapsed = trio.current_time() - started
        meter = self.meters[connector_id]
        limits = [maximum]
        for profiles in (self.profiles[0], self.profiles[connector_id]):
            limit = profile_limit_w(profiles, elapsed, meter.voltage_v, meter.phases)
            if limit is not None:
                limits.append(limit)
        return min(limits)

    def _power_for(self, connector_id: int) -> float:
        if self.connectors[connector_id].status is not ChargePointStatus.charging:
            return 0.0
        power = self.offered_w(connector_id)
        if self.config.ev_max_power_kw is not None:
            power = min(power, self.config.ev_max_power_kw * 1000.0)
        if self.faults.slow_charging(connector_id):
            power = min(power, SLOW_CHARGING_W)
        return power

    def _measurands(self) -> list[str]:
        return [
            m.strip() for m in self.configuration["MeterValuesSampledData"].split(",") if m.strip()
        ]

    def _send_meter_values(
        self,
        connector_id: int,
        context: enums.ReadingContext = enums.ReadingContext.sample_periodic,
    ) -> None:
        meter = self._update_meter(connector_id)
        session = self.sessions.get(connector_id)
        value = meter.sample(
            self.now(), self._measurands(), offered_w=self.offered_w(connector_id), context=context
        )
        if session is None:
            self._send(OutboxItem(lambda: call.MeterValues(connector_id, [value])))
            return
        self.energy_at[connector_id] = value.timestamp
        now = trio.current_time()
        last = self._persisted_at.get(connector_id, -math.inf)
        if self.config.state_path and now - last >= self.config.persist_min_interval:
            self._persisted_at[connector_id] = now
            self.persist()
        self._send(
            OutboxItem(
                lambda: call.MeterValues(connector_id, [value], session.transaction_id),
                session=session,
            )
        )
