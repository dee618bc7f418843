"""A sandbox's initial state as plain data, validated field by field (no I/O).

The schema (every key optional except where noted)::

    {
      "seed": 7,
      "chargers": [{"id": "EVSE001", "connectors": 2, "max_power_kw": 22.0,
                    "ev_max_power_kw": null, "ocpp_version": "1.6" | "2.0.1"}],
      "cards": [{"id_tag": "CARD1", "status": "valid" | "blocked" | "expired" | "invalid",
                 "stale_at": {"charger": "EVSE001", "connector_id": 1}}],
      "sessions": [{"charger": "EVSE001", "connector_id": 2, "id_tag": "NEIGHBOUR",
                    "soc_percent": 40, "suspended_ev": false}],
      "plugged": [{"charger": "EVSE001", "connector_id": 1}],
      "faults": [{"charger": "EVSE001", "scenario": "stuck_connector", "params": {...}}],
      "errors": [{"charger": "EVSE001", "connector_id": 1, "error_code": "GroundFailure",
                  "info": "RCD tripped"}],
      "reservations": [{"charger": "EVSE001", "connector_id": 1, "id_tag": "OTHER"}]
    }
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from libv4e._errors import InvalidInitialState as InvalidInitialState
from libv4e.protocol._version import OcppVersion

CARD_STATUSES = {
    "valid": "Accepted",
    "blocked": "Blocked",
    "expired": "Expired",
    "invalid": "Invalid",
}
FAULTS = frozenset(
    {"session_start_failure", "stuck_connector", "offline_charger", "auth_failure", "slow_charging"}
)


def _number(low: float, high: float) -> Any:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


FAULT_PARAMS: dict[str, tuple[Any, str]] = {
    "connector_id": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "id_tag": (lambda v: isinstance(v, str) and 1 <= len(v) <= 20, "a card id (1..20)"),
    "mode": (lambda v: v in ("silent", "dead"), "silent or dead (offline_charger)"),
    "recover_after": (_number(0.001, 1e6), "seconds, more than 0, at most 1e6"),
    "start_session": (lambda v: isinstance(v, bool), "true or false"),
    "session_seconds": (_number(0, 3600), "seconds from 0 to 3600"),
    "list_version": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "an integer ≥ 0",
    ),
}
"""The five faults' parameters (the ``/demo/trigger`` ones); others are refused."""

MAX_CHARGERS = 20
MAX_CONNECTORS = 10
MAX_KW = 1000.0
"""A world a sandbox builds in an episode: a site, not a typo of a few zeros."""


@dataclasses.dataclass(frozen=True)
class ChargerSpec:
    """A simulated charger of the sandbox."""

    cp_id: str
    connectors: int = 1
    max_power_kw: float = 22.0
    ev_max_power_kw: float | None = None
    ocpp_version: str = "1.6"
    """The OCPP version it speaks (the same charger model either way)."""


@dataclasses.dataclass(frozen=True)
class CardSpec:
    """A card: its status at the CSMS, and where the charger's local list is stale (the
    charger wrongly refuses it there: the auth_failure fault)."""

    id_tag: str
    status: str = "valid"
    stale_at: tuple[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    """A session already running when the episode starts (e.g. another driver's)."""

    cp_id: str
    connector_id: int
    id_tag: str
    soc_percent: float | None = None
    suspended_ev: bool = False


@dataclasses.dataclass(frozen=True)
class PlugSpec:
    """A cable already plugged in, no session."""

    cp_id: str
    connector_id: int


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """A fault scenario started on a charger, with its parameters."""

    cp_id: str
    scenario: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ErrorSpec:
    """A hardware error a connector reports (Faulted with ``error_code``), e.g. a ground
    fault: not one of the five scenarios, nothing an agent can cure remotely."""

    cp_id: str
    connector_id: int
    error_code: str
    info: str | None = None


@dataclasses.dataclass(frozen=True)
class ReservationSpec:
    """A connector reserved (ReserveNow through the CSMS) for another card."""

    cp_id: str
    connector_id: int
    id_tag: str


ERROR_CODES = frozenset(
    {
        "ConnectorLockFailure",
        "EVCommunicationError",
        "GroundFailure",
        "HighTemperature",
        "InternalError",
        "OtherError",
        "OverCurrentFailure",
        "OverVoltage",
        "PowerMeterFailure",
        "PowerSwitchFailure",
        "ReaderFailure",
        "ResetFailure",
        "UnderVoltage",
        "WeakSignal",
    }
)
"""OCPP 1.6 ChargePointErrorCode values a connector can be Faulted with (not NoError, not
LocalListConflict: that one is the auth_failure fault's)."""


@dataclasses.dataclass(frozen=True)
class InitialState:
    """What a sandbox holds when an episode starts."""

    chargers: tuple[ChargerSpec, ...] = (ChargerSpec("EVSE001"),)
    cards: tuple[CardSpec, ...] = ()
    sessions: tuple[SessionSpec, ...] = ()
    plugged: tuple[PlugSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    seed: int = 0
    errors: tuple[ErrorSpec, ...] = ()
    reservations: tuple[ReservationSpec, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitialState:
        """Validate ``data``; :class:`InvalidInitialState` names the first bad field."""
        return _parse(data)

    def charger(self, cp_id: str) -> ChargerSpec | None:
        """The charger ``cp_id``, if the state has it."""
        return next((c for c in self.chargers if c.cp_id == cp_id), None)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInitialState(where, "must be an object")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidInitialState(key, "must be a list")
    return value


def _known(obj: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise InvalidInitialState(f"{prefix}{key}", "unknown field")


def _str(obj: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value or len(value) > 48:
        raise InvalidInitialState(f"{where}.{key}", "must be a non-empty string (≤ 48)")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str, default: int | None, low: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInitialState(f"{where}.{key}", f"must be an integer ≥ {low}")
    return value


def _num(obj: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = obj.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInitialState(f"{where}.{key}", "must be a number ≥ 0")
    return float(value)


def _place(obj: Mapping[str, Any], where: str, chargers: dict[str, ChargerSpec]) -> tuple[str, int]:
    cp_id = _str(obj, "charger", where, next(iter(chargers)))
    if cp_id not in chargers:
        raise InvalidInitialState(f"{where}.charger", f"no charger {cp_id!r} in chargers")
    connector_id = _int(obj, "connector_id", where, 1, 1)
    if connector_id > chargers[cp_id].connectors:
        raise InvalidInitialState(
            f"{where}.connector_id", f"{cp_id} has {chargers[cp_id].connectors} connector(s)"
        )
    return cp_id, connector_id


def _parse(data: Mapping[str, Any]) -> InitialState:
    data = _obj(data, "initial_state")
    _known(
        data,
        "",
        {"seed", "chargers", "cards", "sessions", "plugged", "faults", "errors", "reservations"},
    )
    seed = _int(data, "seed", "initial_state", 0, 0) if "seed" in data else 0
    chargers: dict[str, ChargerSpec] = {}
    raw_chargers = _list(data, "chargers") or [{"id": "EVSE001"}]
    if len(raw_chargers) > MAX_CHARGERS:
        raise InvalidInitialState("chargers", f"at most {MAX_CHARGERS} chargers in one world")
    for i, raw in enumerate(raw_chargers):
        where = f"chargers[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"id", "connectors", "max_power_kw", "ev_max_power_kw", "ocpp_version"})
        cp_id = _str(obj, "id", where)
        version = "1.6"
        if "ocpp_version" in obj:
            try:
                version = OcppVersion.parse(_str(obj, "ocpp_version", where)).label
            except ValueError:
                raise InvalidInitialState(f"{where}.ocpp_version", "1.6 or 2.0.1") from None
        if cp_id in chargers:
            raise InvalidInitialState(f"{where}.id", f"{cp_id!r} appears twice")
        spec = ChargerSpec(
            cp_id,
            _int(obj, "connectors", where, 1, 1),
            _num(obj, "max_power_kw", where, 22.0) or 22.0,
            _num(obj, "ev_max_power_kw", where, None),
            version,
        )
        if spec.connectors > MAX_CONNECTORS:
            raise InvalidInitialState(f"{where}.connectors", f"at most {MAX_CONNECTORS} connectors")
        for key in ("max_power_kw", "ev_max_power_kw"):
            kw = getattr(spec, key)
            if kw is not None and not kw <= MAX_KW:
                raise InvalidInitialState(f"{where}.{key}", f"at most {MAX_KW:g} kW")
        chargers[cp_id] = spec
    cards: dict[str, CardSpec] = {}
    for i, raw in enumerate(_list(data, "cards")):
        where = f"cards[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"id_tag", "status", "stale_at"})
        id_tag = _str(obj, "id_tag", where)
        if len(id_tag) > 20:
            raise InvalidInitialState(f"{where}.id_tag", "at most 20 characters (OCPP idToken)")
        if id_tag in cards:
            raise InvalidInitialState(f"{where}.id_tag", f"{id_tag!r} appears twice")
        status = obj.get("status", "valid")
        if status not in CARD_STATUSES:
            raise InvalidInitialState(
                f"{where}.status", f"must be one of {', '.join(CARD_STATUSES)} (got {status!r})"
            )
        stale = None
        if obj.get("stale_at") is not None:
            stale = _place(
                _obj(obj["stale_at"], f"{where}.stale_at"), f"{where}.stale_at", chargers
            )
        cards[id_tag] = CardSpec(id_tag, status, stale)
    taken: set[tuple[str, int]] = set()
    sessions = []
    for i, raw in enumerate(_list(data, "sessions")):
        where = f"sessions[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"charger", "connector_id", "id_tag", "soc_percent", "suspended_ev"})
        place = _place(obj, where, chargers)
        if place in taken:
            raise InvalidInitialState(f"{where}.connector_id", "already has a session")
        taken.add(place)
        soc = _num(obj, "soc_percent", where, None)
        if soc is not None and soc > 100:
            raise InvalidInitialState(f"{where}.soc_percent", "must be ≤ 100")
        suspended = obj.get("suspended_ev", False)
        if not isinstance(suspended, bool):
            raise InvalidInitialState(f"{where}.suspended_ev", "must be true or false")
        sessions.append(SessionSpec(*place, _str(obj, "id_tag", where), soc, suspended))
    plugged = []
    for i, raw in enumerate(_list(data, "plugged")):
        where = f"plugged[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"charger", "connector_id"})
        place = _place(obj, where, chargers)
        if place in taken:
            raise InvalidInitialState(f"{where}.connector_id", "already has a cable in")
        taken.add(place)
        plugged.append(PlugSpec(*place))
    faults = []
    for i, raw in enumerate(_list(data, "faults")):
        where = f"faults[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"charger", "scenario", "params"})
        cp_id = _str(obj, "charger", where, next(iter(chargers)))
        if cp_id not in chargers:
            raise InvalidInitialState(f"{where}.charger", f"no charger {cp_id!r} in chargers")
        scenario = _str(obj, "scenario", where)
        if scenario not in FAULTS:
            raise InvalidInitialState(
                f"{where}.scenario", f"must be one of {', '.join(sorted(FAULTS))}"
            )
        params = dict(_obj(obj.get("params", {}), f"{where}.params"))
        for key, value in params.items():
            if key not in FAULT_PARAMS:
                raise InvalidInitialState(
                    f"{where}.params.{key}",
                    f"unknown parameter (allowed: {', '.join(sorted(FAULT_PARAMS))})",
                )
            check, what = FAULT_PARAMS[key]
            if not check(value):
                raise InvalidInitialState(f"{where}.params.{key}", f"must be {what}")
        if "connector_id" in params:
            connector_id = _int(params, "connector_id", f"{where}.params", 1, 1)
            if connector_id > chargers[cp_id].connectors:
                raise InvalidInitialState(
                    f"{where}.params.connector_id",
                    f"{cp_id} has {chargers[cp_id].connectors} connector(s)",
                )
        faults.append(FaultSpec(cp_id, scenario, params))
    errors = []
    for i, raw in enumerate(_list(data, "errors")):
        where = f"errors[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"charger", "connector_id", "error_code", "info"})
        place = _place(obj, where, chargers)
        code = obj.get("error_code")
        if code not in ERROR_CODES:
            raise InvalidInitialState(
                f"{where}.error_code", f"must be one of {', '.join(sorted(ERROR_CODES))}"
            )
        info = obj.get("info")
        if info is not None and (not isinstance(info, str) or len(info) > 50):
            raise InvalidInitialState(f"{where}.info", "must be a string (≤ 50)")
        errors.append(ErrorSpec(*place, code, info))
    reservations = []
    reserved: set[tuple[str, int]] = set()
    for i, raw in enumerate(_list(data, "reservations")):
        where = f"reservations[{i}]"
        obj = _obj(raw, where)
        _known(obj, where, {"charger", "connector_id", "id_tag"})
        place = _place(obj, where, chargers)
        if place in taken or place in reserved:
            raise InvalidInitialState(f"{where}.connector_id", "is not free to reserve")
        reserved.add(place)
        id_tag = _str(obj, "id_tag", where)
        if len(id_tag) > 20:
            raise InvalidInitialState(f"{where}.id_tag", "at most 20 characters (OCPP idToken)")
        reservations.append(ReservationSpec(*place, id_tag))
    return InitialState(
        tuple(chargers.values()),
        tuple(cards.values()),
        tuple(sessions),
        tuple(plugged),
        tuple(faults),
        seed,
        tuple(errors),
        tuple(reservations),
    )
