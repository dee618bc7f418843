"""The driver's side of a simulated charger (dual control): plug in, unplug, present a
card, press stop, read the screen, look at the car's app.

Every action goes through the charger's own state machines (the connector machine,
authorization, sessions), so the CSMS sees exactly what a real driver would cause. What
the driver *sees* is derived from the charger's real state and faults (:class:`Display`,
:class:`CarApp`): a driver's account of a problem is grounded in these, never in the
CSMS's view.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ocpp.v16 import enums

from libv4e._errors import DriverActionRefused as DriverActionRefused
from libv4e.charger._face import ChargerFace
from libv4e.charger._model import ChargePointStatus, Connector, ConnectorEvent

__all__ = ["CarApp", "Display", "Driver", "DriverActionRefused"]

# What the screen says after "Error" for each error code a simulated charger reports.
ERROR_WORDS: dict[str, str] = {
    "ConnectorLockFailure": "cable locked",
    "GroundFailure": "ground fault",
    "HighTemperature": "too hot",
    "OverCurrentFailure": "over current",
    "PowerMeterFailure": "meter failure",
    "LocalListConflict": "card list",
    "ReaderFailure": "card reader",
    "EVCommunicationError": "car communication",
    "InternalError": "internal error",
}

LED: dict[ChargePointStatus, str] = {
    ChargePointStatus.available: "green",
    ChargePointStatus.preparing: "green",
    ChargePointStatus.charging: "blue",
    ChargePointStatus.suspended_ev: "blue",
    ChargePointStatus.suspended_evse: "yellow",
    ChargePointStatus.finishing: "green",
    ChargePointStatus.reserved: "yellow",
    ChargePointStatus.unavailable: "red",
    ChargePointStatus.faulted: "red",
}

TEXT: dict[ChargePointStatus, str] = {
    ChargePointStatus.available: "Plug in or present your card",
    ChargePointStatus.preparing: "Present your card",
    ChargePointStatus.suspended_ev: "Paused by the car",
    ChargePointStatus.suspended_evse: "Paused by the charger",
    ChargePointStatus.finishing: "Session ended - unplug the cable",
    ChargePointStatus.reserved: "Reserved",
    ChargePointStatus.unavailable: "Out of service",
}

REFUSED_CARD: dict[str, str] = {
    "Blocked": "Card blocked",
    "Expired": "Card expired",
}


def kw(watts: float) -> float:
    """Watts as kW rounded to 0.1."""
    return round(watts / 1000.0, 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Display:
    """What a connector's screen and LED show: ``text`` ("" when the charger is dark)
    and ``led`` (off, green, blue, yellow or red)."""

    connector_id: int
    text: str
    led: str

    @property
    def blank(self) -> bool:
        """The screen shows nothing (the charger is offline)."""
        return not self.text

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"connector_id": self.connector_id, "text": self.text, "led": self.led}


@dataclasses.dataclass(frozen=True, slots=True)
class CarApp:
    """The car's app: what the car itself measures (it knows nothing of the CSMS)."""

    connector_id: int
    plugged: bool
    charging: bool
    status: str
    soc_percent: float
    power_kw: float
    energy_kwh: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


class Driver:
    """The driver standing at ``charger`` (reach it as ``charger.driver``)."""

    def __init__(self, charger: ChargerFace) -> None:
        self.charger = charger
        self._notices: dict[int, tuple[str, ChargePointStatus]] = {}
        """connector → (a message the screen shows, the status it shows it in)."""

    # -- what the driver sees ------------------------------------------------------------

    def dark(self) -> bool:
        """The charger is offline (down, hung or unreachable): its screen is blank."""
        ch = self.charger
        return not ch.online or ch.faults.silent() or ch.faults.offline_dead()

    def screen(self, connector_id: int) -> Display:
        """What the screen and LED of ``connector_id`` show now."""
        c = self._connector("screen", connector_id)
        if self.dark():
            return Display(connector_id, "", "off")
        led = LED.get(c.status, "off")
        notice = self._notices.get(connector_id)
        if notice is not None and notice[1] is c.status:
            return Display(
                connector_id, notice[0], "red" if c.status is not ChargePointStatus.faulted else led
            )
        if c.status is ChargePointStatus.faulted:
            words = ERROR_WORDS.get(str(c.error_code))
            return Display(connector_id, f"Error: {words}" if words else "Error", led)
        if c.status is ChargePointStatus.charging:
            meter = self.charger.metering.update_meter(connector_id)
            return Display(connector_id, f"Charging {kw(meter.power_w):g} kW", led)
        return Display(connector_id, TEXT.get(c.status, ""), led)

    def car(self, connector_id: int) -> CarApp:
        """What the car's app shows for the car on ``connector_id``."""
        c = self._connector("car", connector_id)
        ch = self.charger
        session = ch.sessions.get(connector_id)
        meter = ch.metering.update_meter(connector_id) if session else ch.meters[connector_id]
        charging = c.status is ChargePointStatus.charging and meter.power_w > 0
        if not c.plugged:
            status = "Not plugged in"
        elif charging:
            status = "Charging"
        elif c.status is ChargePointStatus.suspended_ev:
            status = "Charging paused by the car"
        elif session is not None:
            status = "Plugged in, not charging"
        else:
            status = "Plugged in"
        energy = (meter.energy_wh - session.meter_start) / 1000.0 if session else 0.0
        return CarApp(
            connector_id,
            plugged=c.plugged,
            charging=charging,
            status=status,
            soc_percent=round(meter.soc_percent, 1),
            power_kw=kw(meter.power_w) if session else 0.0,
            energy_kwh=round(energy, 3),
        )

    # -- what the driver does ------------------------------------------------------------

    async def plug_in(self, connector_id: int) -> Display:
        """Plug the car in (Available or Reserved → Preparing)."""
        c = self._connector("plug_in", connector_id)
        if c.plugged:
            raise self._refused(
                "plug_in", f"a cable is already plugged into connector {c.connector_id}"
            )
        self._notices.pop(connector_id, None)
        c.plugged = True
        if c.status in (ChargePointStatus.available, ChargePointStatus.reserved):
            self.charger.board.move(c, ConnectorEvent.PLUG_IN)
        self.charger.persist()
        return self.screen(connector_id)

    async def unplug(self, connector_id: int) -> Display:
        """Take the cable out. Refused while it is locked: a session is running on the
        connector (stop it first), or the lock is stuck (the stuck-connector fault)."""
        c = self._connector("unplug", connector_id)
        ch = self.charger
        if not c.plugged:
            raise self._refused("unplug", f"no cable is plugged into connector {connector_id}")
        if connector_id in ch.sessions:
            raise self._refused(
                "unplug", "the cable is locked while charging: stop the session first"
            )
        lock_failed = (
            c.status is ChargePointStatus.faulted and str(c.error_code) == "ConnectorLockFailure"
        )
        if c.locked and (lock_failed or ch.faults.stuck_connector(connector_id)):
            raise self._refused("unplug", "the cable is stuck: the lock did not release")
        self._notices.pop(connector_id, None)
        ch.unplug(connector_id)
        ch.persist()
        return self.screen(connector_id)

    async def present_card(self, connector_id: int, id_tag: str) -> Display:
        """Tap ``id_tag`` on the reader of ``connector_id``: stops that card's own running
        session there, else plugs the car in (if the cable is not in yet: a driver with a
        car plugs in, then taps), authorizes the card and starts a session. A refused card
        leaves "Card not valid" (or blocked, expired), the cable in."""
        c = self._connector("present_card", connector_id)
        ch = self.charger
        self._notices.pop(connector_id, None)
        session = ch.sessions.get(connector_id)
        if session is not None:
            if session.id_tag == id_tag:
                ch.end_session(connector_id, enums.Reason.local)
                return self.screen(connector_id)
            return self._notice(c, "Another card is charging here")
        if ch.charging.free_connector(connector_id, id_tag=id_tag) is None:
            if c.status is ChargePointStatus.reserved:
                return self._notice(c, "Reserved for another driver")
            if c.status in (ChargePointStatus.faulted, ChargePointStatus.unavailable):
                return self.screen(connector_id)
            return self._notice(c, "Not available")
        if not c.plugged:
            await self.plug_in(connector_id)  # a driver plugs the car in, then taps
        if await ch.charging.begin_session(connector_id, id_tag, remote=False):
            return self.screen(connector_id)
        if ch.faults.session_start_failure(connector_id):
            return self._notice(c, "Starting, please wait")
        known = ch.auth.lookup(id_tag)
        status = str(known.status) if known is not None else "Invalid"
        return self._notice(c, REFUSED_CARD.get(status, "Card not valid"))

    async def press_stop(self, connector_id: int) -> Display:
        """Press the stop button: ends the session running on ``connector_id`` (reason
        Local). Without a session nothing happens."""
        self._connector("press_stop", connector_id)
        self._notices.pop(connector_id, None)
        if connector_id in self.charger.sessions:
            self.charger.end_session(connector_id, enums.Reason.local)
        return self.screen(connector_id)

    # -- helpers -------------------------------------------------------------------------

    def _connector(self, action: str, connector_id: int) -> Connector:
        c = self.charger.connectors.get(connector_id)
        if c is None or connector_id == 0:
            raise self._refused(action, f"this charger has no connector {connector_id}")
        return c

    def _refused(self, action: str, reason: str) -> DriverActionRefused:
        return DriverActionRefused(action, reason, cp_id=self.charger.cp_id)

    def _notice(self, c: Connector, text: str) -> Display:
        self._notices[c.connector_id] = (text, c.status)
        return self.screen(c.connector_id)
