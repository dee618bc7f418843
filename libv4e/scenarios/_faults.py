"""Charger-side faults, started and cleared over OCPP with a DataTransfer of our vendor id.

The protocol (any OCPP 1.6 charger can implement it):

- ``DataTransfer{vendorId: "Voice4EVs", messageId: "FaultStart", data: JSON}`` with data
  ``{"scenario": <name>, "params": {...}}`` starts a fault; answers ``Accepted`` (data:
  the active faults), ``Rejected`` for an unknown scenario or bad data.
- ``messageId: "FaultClear"``, data ``{"scenario": <name>}`` or empty (all): ends faults.
- ``messageId: "FaultStatus"``: answers ``Accepted`` with ``{"active": {...}}``.
- Any other messageId: ``UnknownMessageId``.

A real repair also ends a fault: a reset (session_start_failure, slow_charging,
offline_charger), UnlockConnector (stuck_connector), a SendLocalList that makes the card
Accepted (auth_failure).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import trio
from ocpp.v16 import call, call_result, datatypes, enums

if TYPE_CHECKING:
    from libv4e.charger._model import ChargingSession, Connector, LocalAuthorization, Meter

log = logging.getLogger("libv4e.faults")

FAULT_VENDOR_ID = "Voice4EVs"
FAULT_START, FAULT_CLEAR, FAULT_STATUS = "FaultStart", "FaultClear", "FaultStatus"
FAULT_NAMES = frozenset(
    {"session_start_failure", "stuck_connector", "offline_charger", "auth_failure", "slow_charging"}
)
DEFAULT_ID_TAG = "DRIVER42"


FaultHook = Callable[[Any, dict[str, Any]], Any]
"""``hook(charger, params)``: what a custom fault does when it starts or is cleared (the
charger is the :class:`~libv4e.charger.Charger`, or your subclass of it)."""

KNOCK_INTERVAL = 1.0
"""While dead (offline_charger, mode dead) the simulator tries to reconnect this often; the
sandbox CSMS refuses it at the door until the fault is cleared or ``recover_after`` passed."""


class FaultTarget(Protocol):
    """What a fault acts on: the parts of a simulated charger the fault protocol touches
    (:class:`~libv4e.charger.Charger` is one)."""

    @property
    def cp_id(self) -> str: ...
    @property
    def faults(self) -> FaultState: ...
    @property
    def auth(self) -> LocalAuthorization: ...
    @property
    def connectors(self) -> Mapping[int, Connector]: ...
    @property
    def meters(self) -> Mapping[int, Meter]: ...
    @property
    def sessions(self) -> Mapping[int, ChargingSession]: ...
    def end_session(self, connector_id: int, reason: enums.Reason) -> Any: ...
    def report_status(self, connector: Connector) -> None: ...
    def persist(self) -> None: ...
    async def swipe(self, connector_id: int, id_tag: str) -> bool: ...
    async def disconnect(self, code: int, reason: str) -> None: ...


_PER_CONNECTOR = frozenset({"session_start_failure", "stuck_connector", "slow_charging"})
"""Faults that may be active on several connectors at once (one per connector)."""


class FaultState:
    """Which faults a charger has, with their parameters, per connector.

    Custom faults register hooks with :meth:`register` instead of overriding
    ``on_data_transfer``: ``on_start(charger, params)`` and ``on_clear(charger, params)``.
    """

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}
        self.hooks: dict[str, tuple[FaultHook, FaultHook | None]] = {}
        self._reachable = trio.Event()
        self._reachable.set()
        self._dead_until: float | None = None
        self._saved_cards: dict[str, tuple[datatypes.IdTagInfo | None, int]] = {}
        self._also: dict[str, set[int]] = {}
        """name → other connectors with the same connector fault (the last one started is
        in ``active`` with its parameters)."""
        """id tag → (local list entry, list version) before auth_failure corrupted them."""

    @property
    def names(self) -> frozenset[str]:
        """Every fault this charger can play: the five built-in ones and registered ones."""
        return FAULT_NAMES | frozenset(self.hooks)

    def register(self, name: str, on_start: FaultHook, on_clear: FaultHook | None = None) -> None:
        """Add a custom fault ``name`` (started and cleared over the fault protocol)."""
        self.hooks[name] = (on_start, on_clear)

    def start(self, name: str, params: dict[str, Any]) -> None:
        """Activate ``name``."""
        where = int(params.get("connector_id", 1))
        previous = self._connector_of(name)
        if previous is not None and name in _PER_CONNECTOR:
            self._also[name] = self._also.get(name, set()) | {previous}
        self.active[name] = params
        self._also.get(name, set()).discard(where)

    def clear(self, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """End ``name`` (or every fault); returns what was ended with its parameters."""
        ended = []
        for key in [name] if name else list(self.active):
            params = self.active.pop(key, None)
            self._also.pop(key, None)
            if params is not None:
                ended.append((key, params))
            if key == "offline_charger":
                self._dead_until = None
                self._reachable.set()
        return ended

    def _connector_of(self, name: str) -> int | None:
        params = self.active.get(name)
        return None if params is None else int(params.get("connector_id", 1))

    def _on(self, name: str, connector_id: int) -> bool:
        """Whether connector fault ``name`` is active on ``connector_id``."""
        return self._connector_of(name) == connector_id or connector_id in self._also.get(name, ())

    def _end_on(self, name: str, connector_id: int) -> None:
        """End connector fault ``name`` on ``connector_id`` only."""
        if connector_id in self._also.get(name, ()):
            self._also[name].discard(connector_id)
        elif self._connector_of(name) == connector_id:
            others = self._also.pop(name, set())
            if not others:
                self.clear(name)
                return
            params = dict(self.active[name])
            params["connector_id"] = others.pop()
            self.active[name] = params
            if others:
                self._also[name] = others

    def silent(self) -> bool:
        """offline_charger (silent mode): the charger stops sending on its own."""
        params = self.active.get("offline_charger")
        return params is not None and params.get("mode", "silent") == "silent"

    def offline_dead(self) -> bool:
        """offline_charger (dead mode): the charger is unreachable for a while."""
        params = self.active.get("offline_charger")
        return params is not None and params.get("mode") == "dead"

    def go_dead(self, seconds: float) -> None:
        """Begin the dead period."""
        self._reachable = trio.Event()
        self._dead_until = trio.current_time() + seconds

    async def wait_until_reachable(self, knock_interval: float = KNOCK_INTERVAL) -> None:
        """Sleep until the next reconnection attempt: ``knock_interval`` while dead (ends
        at once when the fault is cleared); the dead period ends after ``recover_after``."""
        if self._dead_until is None:
            return
        with trio.move_on_at(min(self._dead_until, trio.current_time() + knock_interval)):
            await self._reachable.wait()
        if self._dead_until is not None and trio.current_time() >= self._dead_until:
            self.clear("offline_charger")

    def back_online(self) -> None:
        """The charger got through again: the dead period is over."""
        if self.offline_dead():
            self.clear("offline_charger")

    def session_start_failure(self, connector_id: int) -> bool:
        """Start requests on ``connector_id`` are accepted and then ignored."""
        return self._on("session_start_failure", connector_id)

    def stuck_connector(self, connector_id: int) -> bool:
        """The lock of ``connector_id`` will not release after a session."""
        return self._on("stuck_connector", connector_id)

    def unlocked(self, connector_id: int) -> None:
        """UnlockConnector repairs the stuck lock."""
        if self.stuck_connector(connector_id):
            self._end_on("stuck_connector", connector_id)

    def auth_failure(self, id_tag: str) -> int | None:
        """The connector on which ``id_tag`` is wrongly refused, if it is."""
        params = self.active.get("auth_failure")
        if params is None or params.get("id_tag", DEFAULT_ID_TAG) != id_tag:
            return None
        return int(params.get("connector_id", 1))

    def card_repaired(self, id_tag: str) -> None:
        """A SendLocalList made ``id_tag`` Accepted again."""
        params = self.active.get("auth_failure")
        if params is not None and params.get("id_tag", DEFAULT_ID_TAG) == id_tag:
            self.clear("auth_failure")
            self._saved_cards.pop(id_tag, None)

    def slow_charging(self, connector_id: int) -> bool:
        """``connector_id`` delivers about 1.4 kW whatever is offered."""
        return self._on("slow_charging", connector_id)

    def connector_restarted(self, connector_id: int) -> None:
        """ChangeAvailability Inoperative on an idle connector restarts its controller:
        ends the connector faults a restart cures there (no other connector touched)."""
        for name in ("session_start_failure", "slow_charging"):
            if self._on(name, connector_id):
                self._end_on(name, connector_id)

    def reset(self) -> None:
        """A reset (Soft or Hard: either restarts the software) ends the faults a restart
        cures."""
        for name in ("session_start_failure", "slow_charging", "offline_charger"):
            self.clear(name)


def corrupt_card(charger: FaultTarget, id_tag: str, csms_version: int) -> None:
    """auth_failure: an older local list version, with ``id_tag`` Invalid (kept so that a
    sandbox clear can put the list back)."""
    auth = charger.auth
    charger.faults._saved_cards.setdefault(id_tag, (auth.entries.get(id_tag), auth.version))
    auth.version = max(0, min(auth.version, csms_version - 1))
    auth.entries[id_tag] = datatypes.IdTagInfo(enums.AuthorizationStatus.invalid)
    auth.cache.pop(id_tag, None)


def restore_known_good(charger: FaultTarget, ended: list[tuple[str, dict[str, Any]]]) -> None:
    """After a sandbox clear: cards put back, sessions stopped, every connector unlocked,
    Available and NoError, and every connector's status reported (fresh evidence)."""
    from libv4e.charger._model import ConnectorEvent

    for name, params in ended:
        hook = charger.faults.hooks.get(name)
        if hook is not None and hook[1] is not None:
            hook[1](charger, params)
    for tag, (entry, version) in charger.faults._saved_cards.items():
        if entry is None:
            charger.auth.entries.pop(tag, None)
        else:
            charger.auth.entries[tag] = entry
        charger.auth.version = max(charger.auth.version, version)
        charger.auth.cache.pop(tag, None)
    charger.faults._saved_cards.clear()
    for cid in list(charger.sessions):
        charger.end_session(cid, enums.Reason.local)
    for cid, connector in charger.connectors.items():
        if connector.error_code != enums.ChargePointErrorCode.no_error:
            connector.set_error(enums.ChargePointErrorCode.no_error)
        if connector.status is enums.ChargePointStatus.faulted:
            connector.apply(ConnectorEvent.FAULT_CLEARED)
        if cid and connector.status in (
            enums.ChargePointStatus.finishing,
            enums.ChargePointStatus.preparing,
        ):
            connector.plugged = connector.locked = False
            connector.apply(ConnectorEvent.UNPLUG)
        connector.locked = False
        charger.report_status(connector)
    charger.persist()


def _data(req: call.DataTransfer) -> dict[str, Any]:
    if not req.data:
        return {}
    parsed = json.loads(req.data)
    if not isinstance(parsed, dict):
        raise ValueError("data must be a JSON object")
    return parsed


def _answer(charger: FaultTarget, status: enums.DataTransferStatus) -> call_result.DataTransfer:
    return call_result.DataTransfer(status, json.dumps({"active": charger.faults.active}))


async def handle_fault_transfer(charger: FaultTarget, req: call.DataTransfer) -> Any:
    """Answer a fault-protocol DataTransfer (and start the fault's effects)."""
    from libv4e.transport._connection import Reply

    try:
        data = _data(req)
    except ValueError:
        return _answer(charger, enums.DataTransferStatus.rejected)
    if req.message_id == FAULT_STATUS:
        return _answer(charger, enums.DataTransferStatus.accepted)
    if req.message_id == FAULT_CLEAR:
        name = data.get("scenario")
        if name is not None and name not in charger.faults.names:
            return _answer(charger, enums.DataTransferStatus.rejected)
        ended = charger.faults.clear(name)
        if name is None:
            restore_known_good(charger, ended)
        else:
            hook = charger.faults.hooks.get(name)
            for _, params in ended:
                if hook is not None and hook[1] is not None:
                    hook[1](charger, params)
        return _answer(charger, enums.DataTransferStatus.accepted)
    if req.message_id != FAULT_START:
        return call_result.DataTransfer(enums.DataTransferStatus.unknown_message_id)
    name, params = data.get("scenario"), data.get("params") or {}
    if name not in charger.faults.names or not isinstance(params, dict):
        return _answer(charger, enums.DataTransferStatus.rejected)
    connector_id = int(params.get("connector_id", 1))
    if connector_id not in charger.meters:
        return _answer(charger, enums.DataTransferStatus.rejected)
    charger.faults.start(name, params)
    log.info("%s: fault %s started %s", charger.cp_id, name, params)
    return Reply(
        _answer(charger, enums.DataTransferStatus.accepted),
        after=lambda: _begin(charger, name, params),
    )


async def _begin(charger: FaultTarget, name: str, params: dict[str, Any]) -> None:
    """What the charger does right after a fault starts, so the symptom shows."""
    hook = charger.faults.hooks.get(name)
    if hook is not None:
        result = hook[0](charger, params)
        if hasattr(result, "__await__"):
            await result
        return
    connector_id = int(params.get("connector_id", 1))
    id_tag = str(params.get("id_tag", DEFAULT_ID_TAG))
    if name == "offline_charger" and params.get("mode") == "dead":
        charger.faults.go_dead(float(params.get("recover_after", 30)))
        await charger.disconnect(1011, "charger fault")
    elif name == "auth_failure":
        # a corrupted local list: an older version, with the driver's card Invalid
        corrupt_card(charger, id_tag, int(params.get("list_version", charger.auth.version + 1)))
    elif name == "slow_charging" and params.get("start_session", True):
        if connector_id not in charger.sessions:
            await charger.swipe(connector_id, id_tag)
    elif name == "stuck_connector" and params.get("start_session", True):
        if connector_id not in charger.sessions:
            await charger.swipe(connector_id, id_tag)
            await trio.sleep(float(params.get("session_seconds", 2)))
        charger.end_session(connector_id, enums.Reason.local)


def fault_start_request(name: str, params: dict[str, Any] | None = None) -> call.DataTransfer:
    """The DataTransfer a CSMS sends to start fault ``name`` on a charger."""
    return call.DataTransfer(
        FAULT_VENDOR_ID, FAULT_START, json.dumps({"scenario": name, "params": params or {}})
    )


def fault_clear_request(name: str | None = None) -> call.DataTransfer:
    """The DataTransfer a CSMS sends to end fault ``name`` (or all) on a charger."""
    return call.DataTransfer(
        FAULT_VENDOR_ID, FAULT_CLEAR, json.dumps({"scenario": name} if name else {})
    )
