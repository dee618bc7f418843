"""What a diagnosis answers with, as typed values: findings, things not observed yet, and
the actions an agent may take. No words and no tool names: every value is a code and the
facts behind it; the apps word them (the driver's line in their language, the agent's
note in English) and map each :class:`ActionKind` to a tool of theirs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from libv4e.scenarios._voice import Line
from libv4e.transport._connection import MessageRecord


class FindingCode(enum.StrEnum):
    """What is wrong (the ``code`` of a finding), with the facts each one carries."""

    OFFLINE_CHARGER = "offline_charger"
    """``connected``; not connected: ``since`` (None: unknown); connected but silent:
    ``silence_s``, ``heartbeat_interval_s``, ``silent_too_long`` (False: it accepted a
    request for a heartbeat and sent nothing)."""
    STUCK_CONNECTOR = "stuck_connector"
    """The connector's ``status``, ``error_code``, ``info``, ``vendor_error_code`` (the
    last two are the charger's own text: data, never instructions), as every status
    finding below; connector 0 is the charger."""
    CONNECTOR_UNAVAILABLE = "connector_unavailable"
    CONNECTOR_RESERVED = "connector_reserved"
    """``status``."""
    SAFETY_FAULT = "safety_fault"
    CONNECTOR_FAULT = "connector_fault"
    SESSION_START_FAILURE = "session_start_failure"
    """``id_tag`` (None: unknown), ``requested_at``, ``waited_s``, ``status``."""
    SLOW_CHARGING = "slow_charging"
    """``power_w``, ``offered_w``."""
    AUTH_FAILURE = "auth_failure"
    """``id_tag``; after a probe also ``charger_version`` and ``csms_version`` (of the
    local list)."""
    CARD_NOT_ACCEPTED = "card_not_accepted"
    """``id_tag``, ``status`` (at the central system)."""


class ActionKind(enum.StrEnum):
    """What to do (an app maps each kind to a call of its own: a tool, a REST route)."""

    RESET = "reset"
    """Restart the charger; ``type``: ``Hard`` or ``Soft``."""
    UNLOCK = "unlock"
    """Release the cable lock of ``connector_id``."""
    SET_AVAILABILITY = "set_availability"
    """Switch ``connector_id`` (0: the charger) ``Operative`` or ``Inoperative`` (``type``)."""
    START = "start"
    """Start a session on ``connector_id`` with the card ``id_tag``."""
    STOP = "stop"
    """Stop the session ``transaction_id``."""
    UPDATE_CARD = "update_card"
    """Put the card ``id_tag`` with ``status`` in the charger's local list."""
    CHECK_CONNECTION = "check_connection"
    """Look at the charger's connection again."""
    DIAGNOSE = "diagnose"
    """Diagnose again (``connector_id``, ``id_tag``; ``probe``: ask the charger)."""
    OPEN_TICKET = "open_ticket"
    """A ticket for a technician about ``scenario`` (a :class:`FindingCode`); its other
    arguments are the facts to word the summary with (``connector_id``, ``error_code``,
    ``info``)."""


class ImpactScope(enum.StrEnum):
    CHARGER = "charger"
    CONNECTOR = "connector"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class StoppedSession:
    """A session an action would end."""

    connector_id: int
    id_tag: str | None
    transaction_id: int
    energy_wh: float


@dataclasses.dataclass(frozen=True)
class Impact:
    """What an action would do to the sessions on the charger (see :mod:`._impact`)."""

    scope: ImpactScope
    stops: tuple[StoppedSession, ...] = ()


@dataclasses.dataclass(frozen=True)
class Action:
    """One step an agent may take on charger ``cp_id``."""

    kind: ActionKind
    cp_id: str
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What the step is about (``connector_id``, ``type``, ``id_tag``…); None values are
    left out."""
    fallback: bool = False
    """Only when the actions before it did not cure the fault (e.g. a ticket after a
    reset that did not bring the charger back)."""
    needs: tuple[str, ...] = ()
    """Arguments to ask for first (``id_tag``), or a precondition (``cable``)."""
    impact: Impact | None = None
    """Set by the diagnosis: the sessions the step would stop."""
    needs_consent: bool = False
    """Set by the diagnosis: it would stop a session that is not the caller's."""

    @classmethod
    def of(cls, kind: ActionKind, cp_id: str, **arguments: Any) -> Action:
        """An action with ``arguments`` (None values left out)."""
        return cls(kind, cp_id, {k: v for k, v in arguments.items() if v is not None})

    def as_fallback(self) -> Action:
        """This action, to take only when the ones before it did not cure the fault."""
        return dataclasses.replace(self, fallback=True)


class EvidenceKind(enum.StrEnum):
    """What a piece of evidence shows (its facts complete it)."""

    CARD_PRESENTED = "card_presented"
    ANSWERED = "answered"
    """An answer with ``status``."""
    LIST_REFUSED = "list_refused"
    """The charger's own card list refused the card."""
    LAST_RECEIVED = "last_received"
    DISCONNECTED = "disconnected"
    """Disconnected ``since`` (a time, or None: unknown)."""
    STATUS = "status"
    """A connector's ``status`` (with ``error_code``; ``since`` when no message is cited)."""
    START_REQUESTED = "start_requested"
    ACCEPTED = "accepted"
    NO_START = "no_start"
    """No StartTransaction ``by`` a time; the connector still ``status``."""
    METER_VALUES = "meter_values"
    LIST_VERSION = "list_version"
    """The charger's ``charger_version`` and the central system's ``csms_version``."""


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One piece of evidence: a message (None for a fact that is not one message, e.g. a
    disconnection), what it shows, and the facts of that."""

    record: MessageRecord | None
    kind: EvidenceKind
    facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Finding:
    """One problem: its code, the driver's line, the facts the agent's note is made of,
    evidence, what to do."""

    code: FindingCode
    say: Line
    """What to tell the driver (a key the apps word in the caller's language)."""
    connector_id: int | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What the agent's note says (e.g. ``status``, ``error_code``, ``id_tag``,
    ``power_w``); which facts a code has is documented at each rule."""
    actions: list[Action] = dataclasses.field(default_factory=list)
    evidence: list[Evidence] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Pending:
    """Something not observed yet, and the one action that would reveal it; ``say`` is
    also the key of the agent's note (with ``facts``)."""

    connector_id: int | None
    say: Line
    facts: dict[str, Any]
    next_action: Action
    retry_after_s: float | None = None


class Verdict(enum.StrEnum):
    FAULT_FOUND = "fault_found"
    INCONCLUSIVE = "inconclusive"
    HEALTHY = "healthy"


class DiagnosisCheck(enum.StrEnum):
    """What a diagnosis looked at."""

    CONNECTION = "connection"
    STATUS = "status"
    STARTS = "starts"
    AUTHORIZATION = "authorization"
    POWER = "power"
    HEARTBEAT_PROBE = "heartbeat_probe"
    LIST_VERSION_PROBE = "list_version_probe"


class WindowReason(enum.StrEnum):
    """Where the evidence window opens (see :mod:`._window`)."""

    NONE = "none"
    """No message kept."""
    OLDEST = "oldest"
    """The oldest message kept."""
    BOOT = "boot"
    """The charger's last BootNotification."""
    FAULT = "fault"
    """The last accepted sandbox FaultStart / FaultClear."""


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The answer of :func:`~._diagnosis.diagnose` (see its module docstring)."""

    cp_id: str
    at: dt.datetime
    verdict: Verdict
    say: Line
    """The verdict's line: the first finding's, the first pending check's, or the
    healthy moment's."""
    note: FindingCode | str
    """The key of the verdict's agent note: the first finding's code, else ``say.key``."""
    facts: Mapping[str, Any]
    """The facts of that note."""
    next_action: Action | None
    retry_after_s: float | None
    findings: tuple[Finding, ...]
    window_since: dt.datetime | None
    window_reason: WindowReason
    checked: tuple[DiagnosisCheck, ...]
    intent: str | None

    @property
    def healthy(self) -> bool:
        return self.verdict == Verdict.HEALTHY


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
    intent: str | None = None
    """What the driver wants: ``charge`` (a start may be suggested after an unlock) or
    ``leave`` (unplug and go: never suggest a start). None: as ``charge``, except that
    after an unlock no start is suggested."""
