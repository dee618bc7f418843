"""A 2.0.1 station's message log read as the diagnosis reads a 1.6 charger's: each
record keeps its id, time and direction (a citation still points at the message in the
log), and its action and payload are given in the 1.6 terms the rules are written in —
TransactionEvent Started / Updated / Ended as StartTransaction / MeterValues /
StopTransaction, RequestStartTransaction as RemoteStartTransaction, a StatusNotification's
``connectorStatus`` as the 1.6 status, and so on. Records of a 1.6 charger pass
unchanged. Sans-IO: ``session_of`` looks up the CSMS's number of a session by the
station's own id."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from libv4e.csms._sessions201 import CHARGING_STATES, as_16_meter_values, meter_register_wh
from libv4e.protocol._convert import to_json_payload
from libv4e.protocol._session import MessageType
from libv4e.transport._connection import Direction, MessageRecord

__all__ = ["as_16_records"]

_STATUS = {  # 2.0.1 connectorStatus → the 1.6 status it reads as
    "Available": "Available",
    "Occupied": "Preparing",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
_STARTED = {"Started": "StartTransaction", "Updated": "MeterValues", "Ended": "StopTransaction"}


def as_16_records(
    records: Sequence[MessageRecord], session_of: Callable[[str], int | None]
) -> list[MessageRecord]:
    """``records`` of a 2.0.1 station in 1.6 terms (see the module's doc)."""
    calls: dict[tuple[str, Direction], str] = {}  # a TransactionEvent's id → its 1.6 action
    running: dict[str, Any] = {}  # the station's session id → its EVSE, while it runs
    ended: set[Any] = set()  # EVSEs whose session ended (Occupied: the cable is still in)
    out = []
    for record in records:
        if record.message_type == MessageType.CALL:
            mapped = _charging_state(record, running) or _call(record, session_of)
            _follow(record, mapped, running, ended)
            if mapped is not record:  # its answer is read in 1.6 terms too
                calls[(record.unique_id, record.direction)] = mapped.action or ""
            out.append(mapped)
        else:
            asked = Direction.OUT if record.direction == Direction.IN else Direction.IN
            action = calls.get((record.unique_id, asked))
            out.append(_result(record, action, session_of) if action else record)
    return out


def _follow(
    record: MessageRecord, mapped: MessageRecord, running: dict[str, Any], ended: set[Any]
) -> None:
    """Keep which EVSEs run a session, so an Occupied EVSE reads as Charging during one
    and Finishing after it (Preparing before); fixes ``mapped`` in place of a status."""
    p = record.payload if isinstance(record.payload, dict) else {}
    if record.action == "TransactionEvent":
        tid = str((p.get("transactionInfo") or {}).get("transactionId"))
        if mapped.action == "StartTransaction":
            running[tid] = (p.get("evse") or {}).get("id")
            ended.discard(running[tid])
        elif mapped.action == "StopTransaction" and tid in running:
            ended.add(running.pop(tid))
    elif record.action == "StatusNotification" and p.get("connectorStatus") == "Occupied":
        evse = p.get("evseId")
        if evse in running.values():
            mapped.payload["status"] = "Charging"
        elif evse in ended:
            mapped.payload["status"] = "Finishing"
    elif record.action == "StatusNotification" and p.get("connectorStatus") == "Available":
        ended.discard(p.get("evseId"))


def _charging_state(record: MessageRecord, running: dict[str, Any]) -> MessageRecord | None:
    """An Updated event that only says how the session charges now (no meter values) as
    the StatusNotification a 1.6 charger sends for it (SuspendedEV, Charging…)."""
    p = record.payload if isinstance(record.payload, dict) else {}
    info = p.get("transactionInfo") or {}
    state = CHARGING_STATES.get(str(info.get("chargingState")))
    if record.action != "TransactionEvent" or p.get("eventType") != "Updated":
        return None
    if state is None or p.get("meterValue"):
        return None
    evse = (p.get("evse") or {}).get("id", running.get(str(info.get("transactionId"))))
    payload = _clean(
        {
            "connectorId": evse,
            "status": state,
            "errorCode": "NoError",
            "timestamp": p.get("timestamp"),
        }
    )
    return dataclasses.replace(record, action="StatusNotification", payload=payload)


def _call(record: MessageRecord, session_of: Callable[[str], int | None]) -> MessageRecord:
    p = record.payload if isinstance(record.payload, dict) else {}
    action = record.action
    if action == "TransactionEvent":
        kind = _STARTED.get(str(p.get("eventType")))
        if kind is None:
            return record
        info = p.get("transactionInfo") or {}
        tx_id = session_of(str(info.get("transactionId")))
        evse = (p.get("evse") or {}).get("id")
        values = [_meter_value(mv) for mv in p.get("meterValue") or []]
        register = meter_register_wh(p.get("meterValue"))
        token = (p.get("idToken") or {}).get("idToken")
        if kind == "StartTransaction":
            payload = {
                "connectorId": evse,
                "idTag": token,
                "meterStart": round(register or 0),
                "timestamp": p.get("timestamp"),
            }
        elif kind == "MeterValues":
            payload = _clean({"connectorId": evse, "transactionId": tx_id, "meterValue": values})
        else:
            payload = {
                "transactionId": tx_id,
                "meterStop": None if register is None else round(register),
                "timestamp": p.get("timestamp"),
                "reason": info.get("stoppedReason"),
                "idTag": token,
            }
        return dataclasses.replace(record, action=kind, payload=_clean(payload))
    if action == "RequestStartTransaction":
        payload = {
            "idTag": (p.get("idToken") or {}).get("idToken"),
            "connectorId": p.get("evseId"),
        }
        return dataclasses.replace(record, action="RemoteStartTransaction", payload=_clean(payload))
    if action == "RequestStopTransaction":
        payload = {"transactionId": session_of(str(p.get("transactionId")))}
        return dataclasses.replace(record, action="RemoteStopTransaction", payload=payload)
    if action == "StatusNotification" and "connectorStatus" in p:
        payload = {
            "connectorId": p.get("evseId"),
            "status": _STATUS.get(str(p.get("connectorStatus")), str(p.get("connectorStatus"))),
            "errorCode": "NoError",
            "timestamp": p.get("timestamp"),
        }
        return dataclasses.replace(record, payload=payload)
    if action == "NotifyEvent":
        problem = _problem(p)
        if problem is not None:
            return dataclasses.replace(record, action="StatusNotification", payload=problem)
        return record
    if action == "Authorize" and "idToken" in p:
        payload = {"idTag": (p.get("idToken") or {}).get("idToken")}
        return dataclasses.replace(record, payload=payload)
    if action == "MeterValues" and "evseId" in p:
        payload = {
            "connectorId": p.get("evseId"),
            "meterValue": [_meter_value(mv) for mv in p.get("meterValue") or []],
        }
        return dataclasses.replace(record, payload=payload)
    if action == "Reset" and p.get("type") in ("Immediate", "OnIdle"):
        payload = {"type": "Hard" if p.get("type") == "Immediate" else "Soft"}
        return dataclasses.replace(record, payload=payload)
    if action == "UnlockConnector" and "evseId" in p:
        return dataclasses.replace(record, payload={"connectorId": p.get("evseId")})
    if action == "ChangeAvailability" and "operationalStatus" in p:
        payload = {
            "connectorId": (p.get("evse") or {}).get("id", 0),
            "type": p.get("operationalStatus"),
        }
        return dataclasses.replace(record, payload=payload)
    return record


def _result(
    record: MessageRecord, action: str, session_of: Callable[[str], int | None]
) -> MessageRecord:
    p = record.payload if isinstance(record.payload, dict) else {}
    if record.message_type != MessageType.CALLRESULT:
        return dataclasses.replace(record, action=action)
    info = p.get("idTokenInfo")
    if action == "StartTransaction":
        payload: dict[str, Any] = {"idTagInfo": info or {"status": "Accepted"}}
    elif action == "StopTransaction":
        payload = {} if info is None else {"idTagInfo": info}
    elif action == "Authorize":  # idTokenInfo is required in 2.0.1's answer
        payload = {"idTagInfo": info} if isinstance(info, dict) else p
    else:
        payload = p
    return dataclasses.replace(record, action=action, payload=payload)


def _problem(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A NotifyEvent reporting a connector's problem (variable Problem, true; its
    ``techCode`` the 1.6 error code) as the Faulted StatusNotification it stands for."""
    for event in payload.get("eventData") or []:
        if not isinstance(event, dict):
            continue
        variable = (event.get("variable") or {}).get("name")
        component = event.get("component") or {}
        if variable != "Problem" or str(event.get("actualValue")).lower() != "true":
            continue
        return _clean(
            {
                "connectorId": (component.get("evse") or {}).get("id"),
                "status": "Faulted",
                "errorCode": event.get("techCode") or "OtherError",
                "info": event.get("techInfo"),
                "timestamp": event.get("timestamp"),
            }
        )
    return None


def _meter_value(mv: Any) -> dict[str, Any]:
    """A 2.0.1 meter value (JSON) as 1.6's JSON: what :func:`as_16_meter_values` makes
    of it, written straight from dict to dict (this runs for every message a 2.0.1
    station sends that the power history reads)."""
    if not isinstance(mv, dict):
        return to_json_payload(as_16_meter_values([mv])[0])
    sampled = []
    for sv in mv.get("sampledValue") or ():
        if not isinstance(sv, dict):
            continue
        value = sv.get("value")
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        unit = sv.get("unitOfMeasure")
        unit = unit if isinstance(unit, dict) else {}
        multiplier = unit.get("multiplier") or 0
        if not isinstance(multiplier, int) or not -3 <= multiplier <= 9:
            continue
        out = {"value": repr(float(value) * 10.0**multiplier)}
        for key in ("context", "measurand", "phase", "location"):
            if sv.get(key) is not None:
                out[key] = sv[key]
        if unit.get("unit") is not None:
            out["unit"] = unit["unit"]
        sampled.append(out)
    return {"timestamp": mv.get("timestamp"), "sampledValue": sampled}


def _clean(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}
