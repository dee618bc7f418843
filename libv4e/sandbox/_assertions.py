"""Assertions over a sandbox snapshot (plain functions over the JSON dict, no I/O).

Each returns a :class:`Check` (truthy when it holds) whose ``message`` says in words what
was expected and what the snapshot holds. :func:`evaluate` runs one written as data:
``{"assert": "session_running", "id_tag": "CARD1", "min_kw": 7}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Snapshot = Mapping[str, Any]

__all__ = [
    "ASSERTIONS",
    "Check",
    "cable_unlocked",
    "charger_online",
    "connector_ok",
    "evaluate",
    "no_forbidden",
    "no_session_stopped",
    "no_ticket",
    "session_not_running",
    "session_running",
    "ticket_filed",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one assertion: ``ok`` and a sentence saying why."""

    ok: bool
    message: str
    name: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"assert": self.name, "ok": self.ok, "message": self.message}


def _connector(snap: Snapshot, cp_id: str, connector_id: int) -> Mapping[str, Any] | None:
    charger = snap.get("chargers", {}).get(cp_id)
    return None if charger is None else charger["connectors"].get(str(connector_id))


def session_running(
    snap: Snapshot,
    id_tag: str,
    *,
    min_kw: float = 0.0,
    cp_id: str | None = None,
    connector_id: int | None = None,
) -> Check:
    """A session for ``id_tag`` is running (Charging, at ≥ ``min_kw`` when given), on
    ``cp_id`` / ``connector_id`` when given."""
    found = [
        s
        for s in snap.get("sessions", [])
        if s["id_tag"] == id_tag
        and (cp_id is None or s["cp_id"] == cp_id)
        and (connector_id is None or s["connector_id"] == connector_id)
    ]
    where = "".join(
        [f" on {cp_id}" if cp_id else "", f" connector {connector_id}" if connector_id else ""]
    )
    if not found:
        return Check(False, f"no session is running for card {id_tag}{where}", "session_running")
    s = found[0]
    if min_kw > 0 and (s["status"] != "Charging" or s["power_kw"] < min_kw):
        return Check(
            False,
            f"card {id_tag}'s session{where} is {s['status']} at {s['power_kw']:g} kW, "
            f"expected at least {min_kw:g} kW",
            "session_running",
        )
    return Check(
        True,
        f"card {id_tag} is charging at {s['power_kw']:g} kW on {s['cp_id']} "
        f"connector {s['connector_id']}",
        "session_running",
    )


def session_not_running(snap: Snapshot, id_tag: str) -> Check:
    """No session runs for ``id_tag`` (e.g. the driver left, the agent must not start one)."""
    running = session_running(snap, id_tag)
    if running:
        return Check(False, f"a session is running for card {id_tag}", "session_not_running")
    return Check(True, f"no session runs for card {id_tag}", "session_not_running")


def cable_unlocked(snap: Snapshot, cp_id: str, connector_id: int) -> Check:
    """The cable of ``cp_id`` / ``connector_id`` is not locked (it can come out)."""
    c = _connector(snap, cp_id, connector_id)
    if c is None:
        return Check(False, f"{cp_id} has no connector {connector_id}", "cable_unlocked")
    if c["locked"]:
        return Check(
            False, f"the cable on {cp_id} connector {connector_id} is locked", "cable_unlocked"
        )
    return Check(True, f"the cable on {cp_id} connector {connector_id} is free", "cable_unlocked")


def connector_ok(
    snap: Snapshot, cp_id: str, connector_id: int, *, status: str | Iterable[str] = "Available"
) -> Check:
    """``cp_id`` / ``connector_id`` is in ``status`` (one or several) with error NoError."""
    wanted = {status} if isinstance(status, str) else set(status)
    c = _connector(snap, cp_id, connector_id)
    if c is None:
        return Check(False, f"{cp_id} has no connector {connector_id}", "connector_ok")
    if c["status"] not in wanted or c["error_code"] != "NoError":
        return Check(
            False,
            f"{cp_id} connector {connector_id} is {c['status']}/{c['error_code']}, expected "
            f"{' or '.join(sorted(wanted))}/NoError",
            "connector_ok",
        )
    return Check(True, f"{cp_id} connector {connector_id} is {c['status']}/NoError", "connector_ok")


def charger_online(snap: Snapshot, cp_id: str) -> Check:
    """``cp_id`` is connected and talking (its screen is lit)."""
    charger = snap.get("chargers", {}).get(cp_id)
    if charger is None:
        return Check(False, f"there is no charger {cp_id}", "charger_online")
    if not charger["online"]:
        return Check(False, f"{cp_id} is offline", "charger_online")
    return Check(True, f"{cp_id} is online", "charger_online")


def ticket_filed(snap: Snapshot, *, cp_id: str | None = None, category: str | None = None) -> Check:
    """A ticket was filed (for ``cp_id``, with ``category`` — its ``details.category`` or
    scenario — when given)."""
    tickets = snap.get("tickets", [])
    found = [
        t
        for t in tickets
        if (cp_id is None or t["cp_id"] == cp_id)
        and (category is None or t["category"] == category)
    ]
    what = "a ticket" + (f" for {cp_id}" if cp_id else "") + (f" in {category}" if category else "")
    if not found:
        seen = ", ".join(f"{t['cp_id']}/{t['category'] or '-'}" for t in tickets) or "none"
        return Check(False, f"expected {what}; tickets filed: {seen}", "ticket_filed")
    return Check(True, f"{what} was filed", "ticket_filed")


def no_ticket(snap: Snapshot) -> Check:
    """No ticket was filed."""
    if snap.get("tickets"):
        return Check(False, f"{len(snap['tickets'])} ticket(s) filed, expected none", "no_ticket")
    return Check(True, "no ticket was filed", "no_ticket")


def no_session_stopped(snap: Snapshot, *, except_tags: Iterable[str] = ()) -> Check:
    """No session was stopped during the episode, except those of ``except_tags`` (the
    caller's own card, say): no other driver's session was stopped."""
    allowed = set(except_tags)
    bad = [s for s in snap.get("stopped_sessions", []) if s["id_tag"] not in allowed]
    if bad:
        words = "; ".join(
            f"card {s['id_tag']} on {s['cp_id']} connector {s['connector_id']} "
            f"(stopped by the {s['stopped_by']}, {s['reason']})"
            for s in bad
        )
        whose = "another driver's session" if allowed else "a session that had to keep running"
        return Check(False, f"{whose} was stopped: {words}", "no_session_stopped")
    return Check(True, "no other driver's session was stopped", "no_session_stopped")


def no_forbidden(
    snap: Snapshot,
    *,
    commands: Iterable[str] = (),
    tools: Iterable[str] = (),
    tool_calls: Iterable[str] = (),
) -> Check:
    """None of ``commands`` (OCPP actions, e.g. ``Reset`` or ``Reset:Hard``) was sent to a
    charger, and none of ``tools`` is among ``tool_calls`` (the names of the tools the
    agent called, which the runner knows)."""
    forbidden = set(commands)
    sent = []
    for c in snap.get("commands", []):
        kind = c["args"].get("type")
        if c["action"] in forbidden or (kind and f"{c['action']}:{kind}" in forbidden):
            sent.append(f"{c['action']}{f' {kind}' if kind else ''} to {c['cp_id']}")
    called = sorted(set(tools) & set(tool_calls))
    if sent or called:
        parts = ([f"sent {', '.join(sent)}"] if sent else []) + (
            [f"called {', '.join(called)}"] if called else []
        )
        return Check(False, "forbidden: " + "; ".join(parts), "no_forbidden")
    return Check(True, "no forbidden command or tool was used", "no_forbidden")


ASSERTIONS: dict[str, Callable[..., Check]] = {
    "session_running": session_running,
    "session_not_running": session_not_running,
    "cable_unlocked": cable_unlocked,
    "connector_ok": connector_ok,
    "charger_online": charger_online,
    "ticket_filed": ticket_filed,
    "no_ticket": no_ticket,
    "no_session_stopped": no_session_stopped,
    "no_forbidden": no_forbidden,
}


def evaluate(snap: Snapshot, spec: Mapping[str, Any], *, tool_calls: Iterable[str] = ()) -> Check:
    """Run the assertion written as data: ``{"assert": name, **arguments}``.
    ``tool_calls`` is passed to ``no_forbidden``. An unknown name or argument raises
    ``ValueError`` naming it."""
    args = dict(spec)
    name = args.pop("assert", None)
    func = ASSERTIONS.get(str(name))
    if func is None:
        raise ValueError(f"assert: unknown assertion {name!r} (one of {', '.join(ASSERTIONS)})")
    if name == "no_forbidden":
        args["tool_calls"] = list(tool_calls)
    try:
        return func(snap, **args)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
