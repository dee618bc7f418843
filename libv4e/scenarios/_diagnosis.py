"""Diagnosis for agents: what is wrong with a charger, inferred only from OCPP.

A diagnosis is evidence with a time window. The window opens at the charger's last
BootNotification or the last accepted Voice4EVs ``FaultStart`` / ``FaultClear``
DataTransfer (a sandbox reset, visible on the wire); older messages are not evidence of
the present. Every finding cites the messages it rests on (unique id and time) and
expires when later telemetry contradicts it: a StartTransaction, an accepted card, a
newer local list with the card Accepted, a StatusNotification with ``NoError``.

The answer (:class:`~._findings.Diagnosis`) is one of three verdicts, per connector and
then for the charger:

- ``fault_found``: at least one finding, each with a code, the driver's line (``say``),
  the facts of the agent's note, evidence and ``actions`` (:class:`~._findings.Action`:
  a kind of step and its arguments);
- ``inconclusive``: nothing wrong seen, but something was not observed yet; ``next_action``
  is the one action that would reveal more (``retry_after_s`` when it is just waiting);
- ``healthy``: every connector asked about was seen working in the window; ``say`` is
  then the line for that moment: the cable released ("you can unplug now"), the driver's
  car charging (after a card fix, after a restart), or the plain "looks fine".

The answer has no words and no tool names: every ``say`` is a :class:`~._voice.Line` key
and every note a key and its facts; the apps word them (the driver's lines in the
caller's language with the site's spoken names, the agent's notes) and map each
:class:`~._findings.ActionKind` to a tool of theirs.

Every action carries ``impact`` (the sessions it would stop) and ``needs_consent`` (one of
them is not the caller's: see :mod:`._impact`); "seen working" and ``healthy`` use the
notion of resolved the scenario runs use (:mod:`._resolved`).

By default the diagnosis has no side effects: it reads the registry and the message log
and never blocks. ``probe=True`` lets it send TriggerMessage / GetLocalListVersion and
wait up to ``probe_timeout`` for their answers. Which scenario was triggered is never
read: a real charger with the same messages gets the same diagnosis.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from libv4e.scenarios._findings import Action, Diagnosis, FindingCode, Verdict
from libv4e.scenarios._findings import DiagnosisOptions as DiagnosisOptions
from libv4e.scenarios._impact import annotate
from libv4e.scenarios._rules import Diagnoser
from libv4e.scenarios._voice import Line, Say

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem


async def diagnose(
    csms: CentralSystem, cp_id: str, options: DiagnosisOptions | None = None
) -> Diagnosis:
    """Diagnose ``cp_id`` (see the module docstring for the answer).

    Reads only what the CSMS already has unless ``options.probe``; never waits for a
    pending start (the answer is then ``inconclusive`` with ``retry_after_s``).
    """
    options = options or DiagnosisOptions()
    diagnoser = Diagnoser(csms, cp_id, options)
    state = csms.registry.get(cp_id)
    if state is not None:
        await diagnoser.run(state)
        if options.probe and any(f.code == FindingCode.AUTH_FAILURE for f in diagnoser.findings):
            await diagnoser.list_version_note()
    findings, pending = diagnoser.findings, diagnoser.pending
    for f in findings:
        f.actions = [annotate(csms, cp_id, a, options) for a in f.actions]
        f.evidence = [  # cite what went over the wire (a 2.0.1 station's own messages)
            e
            if e.record is None
            else dataclasses.replace(e, record=diagnoser.window.as_sent(e.record))
            for e in f.evidence
        ]
    for p in pending:
        p.next_action = annotate(csms, cp_id, p.next_action, options)
    note: FindingCode | str
    facts: dict[str, Any]
    next_action: Action | None
    if findings:
        verdict, line = Verdict.FAULT_FOUND, findings[0].say
        note, facts = findings[0].code, findings[0].facts
        next_action = findings[0].actions[0] if findings[0].actions else None
        retry = None
    elif pending:
        first = min(pending, key=lambda p: p.retry_after_s is None)
        verdict, line, note, facts = Verdict.INCONCLUSIVE, first.say, first.say.key, first.facts
        next_action, retry = first.next_action, first.retry_after_s
    else:
        verdict = Verdict.HEALTHY
        line, facts = _resolution(diagnoser, options)
        note, next_action, retry = line.key, None, None
    return Diagnosis(
        cp_id=cp_id,
        at=diagnoser.now,
        verdict=verdict,
        say=line,
        note=note,
        facts=facts,
        next_action=next_action,
        retry_after_s=retry,
        findings=tuple(findings),
        window_since=diagnoser.window.window_start,
        window_reason=diagnoser.window.window_reason,
        checked=tuple(diagnoser.checks),
        intent=options.intent,
    )


def _resolution(diagnoser: Diagnoser, options: DiagnosisOptions) -> tuple[Line, dict[str, Any]]:
    """The healthy verdict's line for the moment it is: the cable released, the driver's
    car charging after a fix, or the plain "looks fine"; and the facts of its note."""
    if diagnoser.unlocked and options.intent != "charge":
        cid = min(diagnoser.unlocked)
        return Line(Say.RESOLVED_UNLOCKED, cid), {"connector_id": cid}
    if options.intent == "leave":
        where = options.connector_id
        return Line(Say.RESOLVED_LEAVE, where), {"connector_id": where}
    facts = {"since": diagnoser.window.window_start}
    mine = [
        c
        for c in sorted(diagnoser.working)
        if options.id_tag is not None or c == options.connector_id
    ]
    if mine:
        if diagnoser.list_updated:
            return Line(Say.RESOLVED_CARD, mine[0]), facts
        if diagnoser.window.reset_before_boot:
            return Line(Say.RESOLVED_BACK_ONLINE, mine[0]), facts
        return Line(Say.RESOLVED_CHARGING, mine[0]), facts
    return Line(Say.HEALTHY), facts
