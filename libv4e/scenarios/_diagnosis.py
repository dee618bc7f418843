"""Diagnosis for agents: what is wrong with a charger, inferred only from OCPP.

A diagnosis is evidence with a time window. The window opens at the charger's last
BootNotification or the last accepted Voice4EVs ``FaultStart`` / ``FaultClear``
DataTransfer (a sandbox reset, visible on the wire); older messages are not evidence of
the present. Every finding cites the messages it rests on (unique id and time) and
expires when later telemetry contradicts it: a StartTransaction, an accepted card, a
newer local list with the card Accepted, a StatusNotification with ``NoError``.

The answer is one of three verdicts, per connector and then for the charger:

- ``fault_found``: at least one finding, each with ``say`` (≤ 15 words for the driver),
  ``agent_note`` (for the LLM) and ``actions`` as MCP tool calls ``{tool, arguments}``;
- ``inconclusive``: nothing wrong seen, but something was not observed yet; ``next_action``
  is the one tool call that would reveal more (``retry_after_s`` when it is just waiting);
- ``healthy``: every connector asked about was seen working in the window; ``say`` is
  then the line for that moment: the cable released ("you can unplug now"), the driver's
  car charging (after a card fix, after a restart), or the plain "looks fine".

Every ``say`` (the verdict's, each finding's, and each action's: what to say while taking
it) is rendered at the end in ``options.lang`` with the site's spoken names for the
charger and connectors (:mod:`._voice`, :class:`~libv4e.csms.SpokenNames`).

Every action carries ``impact`` (the sessions it would stop) and ``needs_consent`` (one of
them is not the caller's: see :mod:`._impact`); "seen working" and ``healthy`` use the
notion of resolved the scenario runs use (:mod:`._resolved`).

By default the diagnosis has no side effects: it reads the registry and the message log
and never blocks. ``probe=True`` lets it send TriggerMessage / GetLocalListVersion and
wait up to ``probe_timeout`` for their answers. Which scenario was triggered is never
read: a real charger with the same messages gets the same diagnosis.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from libv4e._errors import StoreError
from libv4e.protocol._time import iso
from libv4e.scenarios._findings import Action
from libv4e.scenarios._findings import DiagnosisOptions as DiagnosisOptions
from libv4e.scenarios._findings import Finding as Finding
from libv4e.scenarios._impact import annotate
from libv4e.scenarios._rules import Diagnoser
from libv4e.scenarios._voice import Line, Voice, action_line

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem
    from libv4e.csms._names import SpokenNames

log = logging.getLogger("libv4e.diagnosis")


async def diagnose(
    csms: CentralSystem, cp_id: str, options: DiagnosisOptions | None = None
) -> dict[str, Any]:
    """Diagnose ``cp_id`` (see the module docstring for the answer's shape).

    Reads only what the CSMS already has unless ``options.probe``; never waits for a
    pending start (the answer is then ``inconclusive`` with ``retry_after_s``).
    """
    options = options or DiagnosisOptions()
    diagnoser = Diagnoser(csms, cp_id, options)
    state = csms.registry.get(cp_id)
    if state is not None:
        await diagnoser.run(state)
        if options.probe and any(f.code == "auth_failure" for f in diagnoser.findings):
            await diagnoser.list_version_note()
    findings, pending = diagnoser.findings, diagnoser.pending
    voice = Voice(options.lang, await _names(csms, cp_id))
    for f in findings:
        for action in f.actions:
            _speak(voice, annotate(csms, cp_id, action, options))
    for p in pending:
        _speak(voice, annotate(csms, cp_id, p.next_action, options))
    if findings:
        verdict, line, note = "fault_found", findings[0].say, findings[0].agent_note
        next_action: Action | None = findings[0].actions[0] if findings[0].actions else None
        retry = None
    elif pending:
        first = min(pending, key=lambda p: p.retry_after_s is None)
        verdict, line, note = "inconclusive", first.say, first.agent_note
        next_action, retry = first.next_action, first.retry_after_s
    else:
        verdict = "healthy"
        line, note = _resolution(diagnoser, options)
        next_action, retry = None, None
    return {
        "cp_id": cp_id,
        "at": iso(diagnoser.now),
        "verdict": verdict,
        "healthy": verdict == "healthy",
        "say": voice.say(line),
        "lang": voice.lang,
        "agent_note": note,
        "next_action": next_action,
        "retry_after_s": retry,
        "findings": [f.as_dict(voice, evidence=options.evidence) for f in findings],
        "window": {
            "since": iso(diagnoser.window.window_start) if diagnoser.window.window_start else None,
            "reason": diagnoser.window.window_reason,
        },
        "checked": diagnoser.checks,
        "intent": options.intent,
    }


def _resolution(diagnoser: Diagnoser, options: DiagnosisOptions) -> tuple[Line, str]:
    """The healthy verdict's line for the moment it is: the cable released, the driver's
    car charging after a fix, or the plain "looks fine"; and the agent's note."""
    cp_id = diagnoser.cp_id
    since = diagnoser.window.since()
    if diagnoser.unlocked and options.intent != "charge":
        cid = min(diagnoser.unlocked)
        note = f"{cp_id}: connector {cid} was unlocked and is Available with no error."
        return Line("resolved.unlocked", cid), note
    if options.intent == "leave":
        where = options.connector_id
        return Line("resolved.leave", where), f"{cp_id}: connector {where} is idle, no error."
    note = f"{cp_id}: online, no error codes, charging seen working since {since}."
    mine = [
        c
        for c in sorted(diagnoser.working)
        if options.id_tag is not None or c == options.connector_id
    ]
    if mine:
        if diagnoser.list_updated:
            return Line("resolved.card", mine[0]), note + " The card list update fixed the card."
        if diagnoser.window.reset_before_boot:
            return Line("resolved.back_online", mine[0]), note + " Back after the reset."
        return Line("resolved.charging", mine[0]), note
    return Line("healthy"), note


def _speak(voice: Voice, action: Action) -> None:
    """Add the line to say while taking ``action``."""
    action["say"] = voice.say(action_line(action["tool"], action.get("arguments") or {}))


async def _names(csms: CentralSystem, cp_id: str) -> SpokenNames | None:
    """The site's spoken names for ``cp_id`` (None, the default words, when the store
    cannot be read: a diagnosis never fails for a name)."""
    try:
        return await csms.store.spoken_names(cp_id)
    except StoreError:
        log.warning("could not read the spoken names of %s; using the default words", cp_id)
        return None
