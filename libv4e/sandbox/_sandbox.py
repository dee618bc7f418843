"""One episode's world: a CSMS, its scenario manager and the simulated chargers the
sandbox starts, set up from an :class:`InitialState` and read back as a canonical
snapshot (JSON, no times, no ids)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import trio
from ocpp.v16 import call

from libv4e._errors import UnknownChargerError
from libv4e.charger import Charger, ChargerConfig
from libv4e.csms import CentralSystem, IdTag
from libv4e.protocol import iso
from libv4e.protocol._session import MessageType
from libv4e.sandbox._state import CARD_STATUSES, InitialState, InvalidInitialState
from libv4e.scenarios import FAULT_VENDOR_ID, ScenarioManager
from libv4e.transport import MessageRecord
from libv4e.transport._connection import Direction

__all__ = ["STOPPED_BY", "Sandbox"]

# Who ends a session with each StopTransaction reason.
STOPPED_BY: dict[str, str] = {
    "Local": "driver",
    "EVDisconnected": "driver",
    "Remote": "agent",
    "UnlockCommand": "agent",
    "HardReset": "agent",
    "SoftReset": "agent",
    "DeAuthorized": "csms",
    "PowerLoss": "charger",
    "Reboot": "charger",
    "EmergencyStop": "charger",
    "Other": "other",
}

# Payload fields of a command that say what it did (ids and times left out).
COMMAND_FIELDS = ("connectorId", "type", "idTag", "key", "updateType")


class FiledTicket(Protocol):
    """What the snapshot reads of a support ticket (the app keeps the tickets)."""

    cp_id: str
    summary: str
    scenario: str | None
    details: dict[str, Any]


class Sandbox:
    """The world of one episode over ``csms`` (with ``scenarios``), whose OCPP server is
    at ``url``. :meth:`setup` starts the chargers of an initial state in a nursery you
    own (``nursery``, or the one given here) and applies the state; :meth:`snapshot`
    reads the world back. ``url`` and ``nursery`` may be set later (a backend knows its
    port once it serves). ``tickets`` gives the support tickets filed so far (the app
    keeps them; none without it)."""

    def __init__(
        self,
        csms: CentralSystem,
        scenarios: ScenarioManager,
        url: str | None = None,
        nursery: trio.Nursery | None = None,
        *,
        tickets: Callable[[], Awaitable[Sequence[FiledTicket]]] | None = None,
    ) -> None:
        self.csms, self.scenarios, self.url, self.nursery = csms, scenarios, url, nursery
        self.tickets = tickets
        self.chargers: dict[str, Charger] = {}
        self.state: InitialState | None = None
        self.ready = False
        self._baseline: set[int] = set()
        self._commands: list[dict[str, Any]] = []
        csms.messages.add_observer(self._observe)

    def charger(self, cp_id: str) -> Charger:
        """The simulated charger ``cp_id`` (UnknownChargerError if the sandbox has none)."""
        found = self.chargers.get(cp_id)
        if found is None:
            raise UnknownChargerError(cp_id)
        return found

    async def setup(
        self, state: InitialState | Mapping[str, Any], nursery: trio.Nursery | None = None
    ) -> InitialState:
        """Start the chargers of ``state`` (in ``nursery``), register its cards at the CSMS,
        start its sessions and faults. Validation comes first: nothing starts if the state
        is invalid (:class:`InvalidInitialState`). A sandbox is set up once."""
        if not isinstance(state, InitialState):
            state = InitialState.from_dict(state)
        if self.state is not None:
            raise InvalidInitialState("initial_state", "this sandbox is already set up")
        nursery = nursery or self.nursery
        if nursery is None or self.url is None:
            raise RuntimeError("Sandbox.setup needs the CSMS url and a nursery")
        self.state = state
        rng = random.Random(state.seed)
        for spec in state.chargers:
            config = ChargerConfig(
                cp_id=spec.cp_id,
                connectors=spec.connectors,
                max_power_kw=spec.max_power_kw,
                ev_max_power_kw=spec.ev_max_power_kw,
                unplug_delay=None,
                virtual_car=False,
                reboot_delay=0.5,
                reconnect_min=0.2,
                reconnect_max=2.0,
                meter_start_wh=float(rng.randrange(0, 500_000, 100)),
                ocpp_version=spec.ocpp_version,
            )
            charger = Charger(config, clock=self.csms.clock)
            self.chargers[spec.cp_id] = charger
            await nursery.start(charger.run, self.url)
            with trio.fail_after(30):
                await charger.connected_event.wait()
                await charger.drain(10)
        for card in state.cards:
            await self.csms.upsert_tag(IdTag(card.id_tag, status=CARD_STATUSES[card.status]))
        for plug in state.plugged:
            await self.chargers[plug.cp_id].driver.plug_in(plug.connector_id)
        for session in state.sessions:
            charger = self.chargers[session.cp_id]
            meter = charger.meters[session.connector_id]
            if session.soc_percent is not None:
                meter.soc_percent = session.soc_percent
            await charger.driver.present_card(session.connector_id, session.id_tag)
            if session.connector_id not in charger.sessions:
                raise InvalidInitialState(
                    "sessions", f"{session.id_tag} could not start on {session.cp_id}"
                )
            if session.suspended_ev:
                charger.car_paused(session.connector_id)
        if state.sessions:
            # the sessions reached the CSMS before any fault starts (a charger that goes
            # silent afterwards still has them on the central system's books)
            await self._settle(dataclasses.replace(state, faults=()))
        for card in state.cards:
            if card.stale_at is not None:
                cp_id, connector_id = card.stale_at
                await self.scenarios.trigger(
                    "auth_failure", cp_id, {"id_tag": card.id_tag, "connector_id": connector_id}
                )
        for fault in state.faults:
            await self.scenarios.trigger(fault.scenario, fault.cp_id, dict(fault.params))
        for error in state.errors:
            self.chargers[error.cp_id].report_error(
                error.connector_id, error.error_code, error.info
            )
        for reservation in state.reservations:
            outcome = await self.csms.operate(
                reservation.cp_id,
                call.ReserveNow(
                    reservation.connector_id,
                    iso(self.csms.clock() + dt.timedelta(hours=2)),
                    reservation.id_tag,
                    self.csms.reservations.allocate_id(),
                ),
                timeout=30,
            )
            outcome.answer()  # a failed reservation fails the setup
        await self._settle(state)
        self._baseline = {t.transaction_id for t in self.csms.transactions if not t.active}
        self._commands.clear()
        self.ready = True
        return state

    async def _settle(self, state: InitialState, timeout: float = 30.0) -> None:
        """Wait until the faults' first effects have played (the stuck lock's session has
        ended, the slow session runs) and the CSMS has every transaction message."""
        with trio.move_on_after(timeout):
            while True:
                for fault in state.faults:
                    charger = self.chargers[fault.cp_id]
                    cid = int(fault.params.get("connector_id", 1))
                    played = fault.params.get("start_session", True)
                    c = charger.connectors[cid]
                    if fault.scenario == "stuck_connector" and played and c.status != "Faulted":
                        break
                    if fault.scenario == "slow_charging" and played and cid not in charger.sessions:
                        break
                else:
                    for charger in self.chargers.values():
                        if charger.online:
                            await charger.drain(timeout)
                    if all(self._books_agree(cp_id) for cp_id in self.chargers):
                        return
                await trio.sleep(0.05)

    def _books_agree(self, cp_id: str) -> bool:
        charger = self.chargers[cp_id]
        if not charger.online:
            return True
        active = {t.connector_id for t in self.csms.transactions.active() if t.cp_id == cp_id}
        return active == set(charger.sessions)

    def _observe(self, record: MessageRecord) -> None:
        if (
            not self.ready
            or record.direction != Direction.OUT
            or record.message_type != MessageType.CALL
        ):
            return
        if record.action == "DataTransfer" and record.payload.get("vendorId") == FAULT_VENDOR_ID:
            return
        args = {k: record.payload[k] for k in COMMAND_FIELDS if k in record.payload}
        self._commands.append({"cp_id": record.cp_id, "action": record.action, "args": args})

    async def snapshot(self, *, drain: float = 5.0) -> dict[str, Any]:
        """The world now, canonical and JSON-ready (no times, no ids; lists sorted).
        Messages in flight are delivered first (each online charger's queue drained, at
        most ``drain`` seconds)."""
        for charger in self.chargers.values():
            if charger.online and not charger.driver.dark():
                with trio.move_on_after(drain):
                    await charger.drain(drain)
        chargers: dict[str, Any] = {}
        sessions = []
        for cp_id, charger in sorted(self.chargers.items()):
            connectors = {}
            for cid, c in sorted(charger.connectors.items()):
                if not cid:
                    continue
                connectors[str(cid)] = {
                    "status": str(c.status),
                    "error_code": str(c.error_code),
                    "plugged": c.plugged,
                    "locked": c.locked,
                    "screen": charger.driver.screen(cid).text,
                }
            chargers[cp_id] = {
                "online": charger.online and not charger.driver.dark(),
                "faults": sorted(charger.faults.active),
                "connectors": connectors,
            }
            for cid, session in sorted(charger.sessions.items()):
                car = charger.driver.car(cid)
                sessions.append(
                    {
                        "cp_id": cp_id,
                        "connector_id": cid,
                        "id_tag": session.id_tag,
                        "status": str(charger.connectors[cid].status),
                        "power_kw": car.power_kw,
                    }
                )
        stopped = sorted(
            (
                {
                    "cp_id": t.cp_id,
                    "connector_id": t.connector_id,
                    "id_tag": t.id_tag,
                    "reason": t.stop_reason or "Local",
                    "stopped_by": STOPPED_BY.get(t.stop_reason or "Local", "other"),
                }
                for t in self.csms.transactions
                if not t.active and t.transaction_id not in self._baseline
            ),
            key=lambda s: (s["cp_id"], s["connector_id"], s["id_tag"]),
        )
        tickets = [
            {
                "cp_id": t.cp_id,
                "category": str(t.details.get("category") or t.scenario or ""),
                "scenario": t.scenario,
                "summary": t.summary,
            }
            for t in (await self.tickets() if self.tickets is not None else ())
        ]
        cards = {t.id_tag: t.status for t in sorted(self.csms.auth, key=lambda t: t.id_tag)}
        return {
            "chargers": chargers,
            "sessions": sessions,
            "stopped_sessions": stopped,
            "tickets": tickets,
            "commands": list(self._commands),
            "cards": cards,
        }
