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
from typing import TYPE_CHECKING, Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

if TYPE_CHECKING:
    from ._charger import Charger

log = logging.getLogger("libv4e.faults")

FAULT_VENDOR_ID = "Voice4EVs"
FAULT_START, FAULT_CLEAR, FAULT_STATUS = "FaultStart", "FaultClear", "FaultStatus"
FAULT_NAMES = frozenset(
    {"session_start_failure", "stuck_connector", "offline_charger", "auth_failure", "slow_charging"}
)
DEFAULT_ID_TAG = "DRIVER42"


class FaultState:
    """Which faults a charger has, with their parameters."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}
        self._reachable = trio.Event()
        self._reachable.set()
        self._dead_until: float | None = None

    def start(self, name: str, params: dict[str, Any]) -> None:
        """Activate ``name``."""
        self.active[name] = params

    def clear(self, name: str | None = None) -> None:
        """End ``name`` (or every fault)."""
        for key in [name] if name else list(self.active):
            self.active.pop(key, None)
            if key == "offline_charger":
                self._dead_until = None
                self._reachable.set()

    def _connector(self, name: str) -> int | None:
        params = self.active.get(name)
        return None if params is None else int(params.get("connector_id", 1))

    def silent(self) -> bool:
        """offline_charger (silent mode): the charger stops sending on its own."""
        params = self.active.get("offline_charger")
        return params is not None and params.get("mode", "silent") == "silent"

    def offline_dead(self) -> bool:
        """offline_charger (dead mode): the charger stays disconnected for a while."""
        params = self.active.get("offline_charger")
        return params is not None and params.get("mode") == "dead"

    def go_dead(self, seconds: float) -> None:
        """Begin the dead period."""
        self._reachable = trio.Event()
        self._dead_until = trio.current_time() + seconds

    async def wait_until_reachable(self) -> None:
        """Sleep through the dead period (or until the fault is cleared)."""
        if self._dead_until is not None:
            with trio.move_on_at(self._dead_until):
                await self._reachable.wait()
        self.clear("offline_charger")

    def session_start_failure(self) -> bool:
        """Start requests are accepted and then ignored."""
        return "session_start_failure" in self.active

    def stuck_connector(self, connector_id: int) -> bool:
        """The lock of ``connector_id`` will not release after a session."""
        return self._connector("stuck_connector") == connector_id

    def unlocked(self, connector_id: int) -> None:
        """UnlockConnector repairs the stuck lock."""
        if self.stuck_connector(connector_id):
            self.clear("stuck_connector")

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

    def slow_charging(self, connector_id: int) -> bool:
        """``connector_id`` delivers about 1.4 kW whatever is offered."""
        return self._connector("slow_charging") == connector_id

    def reset(self, kind: enums.ResetType) -> None:
        """A reset ends the faults a restart cures."""
        for name in ("session_start_failure", "slow_charging", "offline_charger"):
            self.clear(name)


def _data(req: call.DataTransfer) -> dict[str, Any]:
    if not req.data:
        return {}
    parsed = json.loads(req.data)
    if not isinstance(parsed, dict):
        raise ValueError("data must be a JSON object")
    return parsed


def _answer(charger: Charger, status: enums.DataTransferStatus) -> call_result.DataTransfer:
    return call_result.DataTransfer(status, json.dumps({"active": charger.faults.active}))


async def handle_fault_transfer(charger: Charger, req: call.DataTransfer) -> Any:
    """Answer a fault-protocol DataTransfer (and start the fault's effects)."""
    from ._connection import Reply

    try:
        data = _data(req)
    except ValueError:
        return _answer(charger, enums.DataTransferStatus.rejected)
    if req.message_id == FAULT_STATUS:
        return _answer(charger, enums.DataTransferStatus.accepted)
    if req.message_id == FAULT_CLEAR:
        name = data.get("scenario")
        if name is not None and name not in FAULT_NAMES:
            return _answer(charger, enums.DataTransferStatus.rejected)
        charger.faults.clear(name)
        return _answer(charger, enums.DataTransferStatus.accepted)
    if req.message_id != FAULT_START:
        return call_result.DataTransfer(enums.DataTransferStatus.unknown_message_id)
    name, params = data.get("scenario"), data.get("params") or {}
    if name not in FAULT_NAMES or not isinstance(params, dict):
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


async def _begin(charger: Charger, name: str, params: dict[str, Any]) -> None:
    """What the charger does right after a fault starts, so the symptom shows."""
    connector_id = int(params.get("connector_id", 1))
    id_tag = str(params.get("id_tag", DEFAULT_ID_TAG))
    if name == "offline_charger" and params.get("mode") == "dead":
        charger.faults.go_dead(float(params.get("recover_after", 30)))
        if charger._conn is not None:
            await charger._conn.aclose(1011, "charger fault")
    elif name == "auth_failure":
        # a corrupted local list: an older version, with the driver's card Invalid
        csms_version = int(params.get("list_version", charger.auth.version + 1))
        charger.auth.version = max(0, min(charger.auth.version, csms_version - 1))
        charger.auth.entries[id_tag] = datatypes.IdTagInfo(enums.AuthorizationStatus.invalid)
        charger.auth.cache.pop(id_tag, None)
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
