"""What a diagnosis answers with: findings, things not observed yet, and the actions an
agent may take — abstract tool calls ``{tool, arguments}``, never REST paths (the apps map
tools to their API)."""

from __future__ import annotations

import dataclasses
from typing import Any

from libv4e.protocol import MESSAGE_KINDS
from libv4e.protocol._time import iso
from libv4e.scenarios._voice import Line, Voice
from libv4e.transport._connection import MessageRecord

Action = dict[str, Any]
"""``{"tool": <MCP tool name>, "arguments": {...}}`` (``needs``: arguments to ask for)."""


def tool_call(tool: str, **arguments: Any) -> Action:
    """An action: an MCP tool call (arguments that are None are left out)."""
    return {"tool": tool, "arguments": {k: v for k, v in arguments.items() if v is not None}}


def fallback(action: Action) -> Action:
    """Mark ``action`` as the fallback: to take only when the actions before it did not
    cure the fault (e.g. a ticket after a reset that did not bring the charger back)."""
    action["fallback"] = True
    return action


@dataclasses.dataclass
class Finding:
    """One problem: a code, words for the driver and the agent, evidence, what to do."""

    code: str
    title: str
    say: Line
    """What to tell the driver (rendered in the caller's language with the site's names)."""
    agent_note: str
    connector_id: int | None = None
    actions: list[Action] = dataclasses.field(default_factory=list)
    evidence: list[tuple[MessageRecord | None, str]] = dataclasses.field(default_factory=list)
    """(message, note); None for a fact that is not one message (e.g. a disconnection)."""

    def as_dict(self, voice: Voice | None = None, *, evidence: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: compact (message ids cited) or with the full evidence;
        ``say`` in ``voice`` (English, default names when None)."""
        out: dict[str, Any] = {
            "code": self.code,
            "title": self.title,
            "connector_id": self.connector_id,
            "say": (voice or Voice()).say(self.say),
            "agent_note": self.agent_note,
            "actions": self.actions,
            "cites": [_cite(r) for r, _ in self.evidence if r is not None],
        }
        if evidence:
            out["evidence"] = [_evidence(r, note) for r, note in self.evidence]
        return out


@dataclasses.dataclass
class Pending:
    """Something not observed yet, and the one action that would reveal it."""

    connector_id: int | None
    say: Line
    agent_note: str
    next_action: Action
    retry_after_s: float | None = None


@dataclasses.dataclass(frozen=True)
class DiagnosisOptions:
    """Hints from the driver, whether to probe, and how long a start may take."""

    id_tag: str | None = None
    connector_id: int | None = None
    probe: bool = False
    """Send TriggerMessage / GetLocalListVersion to the charger (off by default)."""
    probe_timeout: float = 2.0
    start_timeout: float = 5.0
    """A start request with no StartTransaction for this long is a failed start; before
    that the diagnosis is inconclusive ("ask again in N s"), it never waits."""
    evidence: bool = False
    """Include every cited message in full (payloads), not just ids and times."""
    lang: str = "en"
    """The language of every ``say`` line (see ``_voice.LANGUAGES``); the agent notes
    stay English (they are for the model, not the driver)."""
    intent: str | None = None
    """What the driver wants: ``charge`` (a start may be suggested after an unlock) or
    ``leave`` (unplug and go: never suggest a start). None: as ``charge``, except that
    after an unlock no start is suggested."""


def _cite(record: MessageRecord) -> dict[str, Any]:
    return {"id": record.unique_id, "at": iso(record.at), "action": record.action}


def _evidence(record: MessageRecord | None, note: str) -> dict[str, Any]:
    if record is None:
        return {"note": note}
    kind = MESSAGE_KINDS.get(record.message_type, "?")
    return {
        "id": record.unique_id,
        "at": iso(record.at),
        "direction": record.direction,
        "type": kind,
        "action": record.action,
        "payload": record.payload,
        "note": note,
    }
