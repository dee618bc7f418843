"""The transaction book: the CSMS's billing records as a plain object (no I/O, no clock).

Every charging session a charger reports goes through :class:`TransactionBook`. Each
operation (:meth:`~TransactionBook.start`, :meth:`~TransactionBook.stop`,
:meth:`~TransactionBook.meter`, :meth:`~TransactionBook.status`, ...) *plans* a
:class:`Change` without touching the book; the I/O shell writes the change to the store
and only then calls :meth:`~TransactionBook.apply`. A failed write therefore leaves the
book as it was, and the charger (answered with a CALLERROR) retries.

Invariants (checked by the property tests in ``tests/csms/test_txbook.py``):

- transaction ids are unique and increasing; an id is never handed out twice, also across
  restarts (ids come from blocks the store reserves durably, see
  :meth:`~TransactionBook.add_ids`);
- a StartTransaction repeated after a lost answer gets the same id (found by an index on
  charger, connector, id tag, meterStart and timestamp, not by a scan);
- every accepted start has exactly one row, and no row is ever replaced by another
  transaction's data (new rows are inserted, changed rows are updated by id and charger);
- a stopped transaction never becomes active again;
- the acknowledged energy register of a transaction never decreases: a lower reading is
  kept as a flag, not trusted;
- an OCPP 2.0.1 session (``TransactionEvent``) has one row per charger transaction id,
  whichever of its events arrives first, however often each is resent; its ``seqNo``
  gaps are flagged (:data:`FLAG_SEQUENCE_GAP`);
- at most one transaction is active per connector: a new start closes the old one, a
  reboot that does not report the session again, or a connector reported Available or
  Preparing, closes it with :attr:`Transaction.reconciled` saying why.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Iterator

from libv4e._errors import Libv4eError
from libv4e.csms._profiles import ChargingProfileRecord
from libv4e.csms._registry import Transaction
from libv4e.csms._reservations import Reservation

# Flags a transaction may carry (Transaction.flags).
FLAG_METER_DECREASED = "meter_decreased"
"""A MeterValues register was below the one already acknowledged (kept, not trusted)."""
FLAG_STOP_BELOW_ACKNOWLEDGED = "meter_stop_below_acknowledged"
"""meterStop was below meterStart or below the last acknowledged register."""
FLAG_IMPLAUSIBLE_ENERGY = "implausible_energy"
"""More energy than the connector's maximum power allows over the session's duration."""
FLAG_STOPPED_AFTER_RECONCILIATION = "stopped_after_reconciliation"
"""The CSMS had closed the session itself; the charger's StopTransaction came later and
its values were recorded."""
FLAG_STOP_BEFORE_START = "stop_before_start"
"""The stop timestamp is earlier than the start timestamp."""

FLAG_SEQUENCE_GAP = "sequence_gap"
"""A 2.0.1 TransactionEvent's seqNo skipped numbers: events of this session are missing."""
FLAG_STARTED_UNSEEN = "started_unseen"
"""The first event of this 2.0.1 session the CSMS received was not its Started (the record
was opened from a later one: nothing the charger reports is dropped)."""
FLAG_METER_START_UNKNOWN = "meter_start_unknown"
"""The session began without an energy register: its first register is taken as the start."""
FLAG_REPORTED_OFFLINE = "reported_offline"
"""An event of this 2.0.1 session was queued while the station was offline (``offline``
true): its times are the station's clock, delivered late."""

# Why the CSMS closed a session itself (Transaction.reconciled).
RECONCILED_SUPERSEDED = "superseded: a new StartTransaction arrived on the same connector"
RECONCILED_AVAILABLE = "connector reported {status} without a StopTransaction"
RECONCILED_REBOOT = "charger rebooted and did not report this session again within {grace:g} s"
RECONCILED_REPLY_LOST = (
    "the StartTransaction answer could not be delivered and the charger did not retry it "
    "within {grace:g} s"
)

ENDS_SESSION = frozenset({"Available", "Preparing"})
"""Connector statuses that mean no session runs on it."""
CONFIRMS_SESSION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
"""Connector statuses that mean a session is still running."""

IMPLAUSIBLE_SLACK_WH = 1000.0
CLOCK_TOLERANCE_S = 300.0
"""How much more time than the CSMS saw pass a session's timestamps may claim for the
energy bound (a register "sampled in year 9999" made 20 TWh plausible)."""
CLOCK_AHEAD_S = 3600.0
"""How far a charger's timestamps may run ahead of the CSMS's clock before they are
flagged (minutes of drift are common; an hour or more is a clock or time-zone error)."""
FLAG_CLOCK_AHEAD = "timestamp_ahead_of_csms"
"""A meter or stop timestamp more than CLOCK_AHEAD_S ahead of the CSMS's clock."""
"""Energy always allowed on top of ``max_power_w × duration`` (clock skew, rounding)."""


class NoIdsAvailable(Libv4eError):
    """:meth:`TransactionBook.start` was called with no reserved ids left: the shell must
    reserve a block from the store first (:meth:`TransactionBook.add_ids`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class UnmatchedStop:
    """A StopTransaction that matched no transaction of this charger, kept as evidence."""

    cp_id: str
    transaction_id: int
    meter_stop: int
    timestamp: dt.datetime | None
    reason: str | None
    id_tag: str | None
    received_at: dt.datetime
    kind: str
    """``unknown`` (no such id), ``foreign`` (the id belongs to another charger) or
    ``conflicting`` (a second stop with other values for a stopped transaction)."""
    owner: str | None = None
    """For ``foreign``: the charger the id belongs to."""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        from libv4e.csms._registry import iso

        return {
            "cp_id": self.cp_id,
            "transaction_id": self.transaction_id,
            "meter_stop": self.meter_stop,
            "timestamp": None if self.timestamp is None else iso(self.timestamp),
            "reason": self.reason,
            "id_tag": self.id_tag,
            "received_at": iso(self.received_at),
            "kind": self.kind,
            "owner": self.owner,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Doubt:
    """Why an active session is doubted, since when (see :meth:`TransactionBook.expire`)."""

    since: dt.datetime
    why: str  # RECONCILED_REBOOT or RECONCILED_REPLY_LOST
    clock_running: bool = True  # False until the charger is back (then counted once)


@dataclasses.dataclass(frozen=True, slots=True)
class MeterRows:
    """Meter values an event carries (OCPP 2.0.1 TransactionEvent), as the JSON objects
    the charger sent: written with the event's transaction rows, in the same write."""

    cp_id: str
    connector_id: int
    transaction_id: int
    values: tuple[dict[str, object], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What one event decided, every row it touches: transactions to insert and to
    update, evidence to keep, and the operator-book records the event moves (the
    reservation a start uses, the TxProfiles it binds or whose transaction ended). The
    shell writes all of it in one database transaction, then applies it
    (:meth:`~libv4e.csms._ledger.Ledger.apply`).

    ``transaction`` is the transaction the operation was about (None for an unmatched
    stop); ``retry`` is true when the message repeats one already recorded (nothing to
    write)."""

    transaction: Transaction | None = None
    new: tuple[Transaction, ...] = ()
    changed: tuple[Transaction, ...] = ()
    unmatched: UnmatchedStop | None = None
    retry: bool = False
    reservations: tuple[Reservation, ...] = ()
    profiles: tuple[ChargingProfileRecord, ...] = ()
    doubts: tuple[tuple[int, Doubt | None], ...] = ()
    """Sessions the event makes doubted (or, with None, no longer doubted): kept in
    memory only (nothing to write)."""
    meter_values: tuple[MeterRows, ...] = ()
    """Meter values the event carries (2.0.1), written with its rows."""

    @property
    def closed(self) -> tuple[Transaction, ...]:
        """The transactions this change closes (the stopped one and any reconciled)."""
        return tuple(t for t in self.changed if not t.active)

    @property
    def writes(self) -> bool:
        """Whether anything must be written to the store."""
        return bool(
            self.new
            or self.changed
            or self.unmatched
            or self.reservations
            or self.profiles
            or self.meter_values
        )


_StartKey = tuple[str, int, str, int, dt.datetime]

STARTED, UPDATED, ENDED = "Started", "Updated", "Ended"


@dataclasses.dataclass(frozen=True, slots=True)
class SessionEvent:
    """An OCPP 2.0.1 ``TransactionEvent`` as the book reads it: the charger's session id
    and sequence number, where and when, and the values it carries (the energy register
    of its meter values, the id token, why it ended). Version-agnostic values only: the
    2.0.1 handlers translate the message (EVSE → connector, IdToken → id tag)."""

    kind: str
    """:data:`STARTED`, :data:`UPDATED` or :data:`ENDED` (the message's eventType)."""
    charger_transaction_id: str
    seq_no: int
    connector_id: int
    timestamp: dt.datetime
    id_tag: str | None = None
    energy_wh: float | None = None
    """The last Energy.Active.Import.Register in the event's meter values, in Wh."""
    reason: str | None = None
    """stoppedReason (Ended)."""
    reservation_id: int | None = None
    id_tag_status: str = "Accepted"
    begin_energy_wh: float | None = None
    """The register sampled at the session's start (context Transaction.Begin), if the
    event carries it (an Ended event's TxEndedMeasurands do), in Wh."""
    id_token_type: str | None = None
    """The type of the event's ``idToken`` (ISO14443, Central, NoAuthorization…), if it
    carries one: the session keeps the first one it is told."""
    trigger_reason: str | None = None
    """Why the station sent the event (``triggerReason``: Authorized, CablePluggedIn,
    RemoteStart, StopAuthorized, EVCommunicationLost…)."""
    offline: bool = False
    """The event was queued while the station was offline."""

    @property
    def start_wh(self) -> float | None:
        """The session's start register as this event tells it: the one sampled at the
        start, else its register (the first the CSMS learns is taken as the start)."""
        return self.energy_wh if self.begin_energy_wh is None else self.begin_energy_wh


class TransactionBook:
    """The transactions of a central system: active ones and the most recent finished."""

    def __init__(self, *, keep_finished: int = 500, max_power_w: float = 400_000.0) -> None:
        self.keep_finished = keep_finished
        self.max_power_w = max_power_w
        self._txs: dict[int, Transaction] = {}
        self._by_start: dict[_StartKey, int] = {}
        self._by_charger_id: dict[tuple[str, str], int] = {}
        self._active_on: dict[tuple[str, int], int] = {}
        self._finished: collections.deque[int] = collections.deque()
        self._suspects: dict[int, Doubt] = {}
        self._next_id = 1
        self._id_limit = 1  # ids in [_next_id, _id_limit) are reserved and unused
        self._last_id = 0

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._txs)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(self._txs.values())

    def __contains__(self, transaction_id: object) -> bool:
        return transaction_id in self._txs

    def get(self, transaction_id: int) -> Transaction | None:
        """A transaction in the book (active, or among the recent finished)."""
        return self._txs.get(transaction_id)

    def active(self) -> list[Transaction]:
        """Transactions not yet stopped, oldest first."""
        return [self._txs[i] for i in sorted(self._active_on.values())]

    def active_on(self, cp_id: str, connector_id: int) -> Transaction | None:
        """The transaction running on a connector, if any."""
        tx_id = self._active_on.get((cp_id, connector_id))
        return None if tx_id is None else self._txs[tx_id]

    def of_charger(self, cp_id: str, charger_transaction_id: str) -> Transaction | None:
        """The session a 2.0.1 charger calls ``charger_transaction_id``, if in the book."""
        tx_id = self._by_charger_id.get((cp_id, charger_transaction_id))
        return None if tx_id is None else self._txs.get(tx_id)

    def has_active(self, cp_id: str) -> bool:
        """Whether a session of ``cp_id`` is open (O(active sessions): for rare paths)."""
        return any(key[0] == cp_id for key in self._active_on)

    def suspects(self) -> dict[int, str]:
        """Active transactions the CSMS doubts (charger rebooted, answer lost): id → why."""
        return {i: s.why for i, s in self._suspects.items()}

    # -- ids -------------------------------------------------------------------------------

    @property
    def ids_left(self) -> int:
        """Reserved ids not yet handed out."""
        return self._id_limit - self._next_id

    def add_ids(self, first: int, count: int) -> None:
        """Add a block ``[first, first + count)`` that the store reserved durably.

        Blocks must come in increasing order; ids below the last one handed out are
        refused, so an id is never given twice."""
        if count < 1 or first <= self._last_id or first < self._id_limit:
            raise ValueError(f"id block {first}+{count} overlaps ids already used")
        self._next_id, self._id_limit = first, first + count

    def _allocate(self) -> int:
        if self._next_id >= self._id_limit:
            raise NoIdsAvailable("no reserved transaction ids left")
        tx_id = self._next_id
        self._next_id += 1
        self._last_id = tx_id
        return tx_id

    # -- loading ---------------------------------------------------------------------------

    def load(self, transactions: Iterable[Transaction]) -> None:
        """Add transactions read from the store (at start, or one looked up later)."""
        for tx in sorted(transactions, key=lambda t: t.transaction_id):
            self._put(tx)
            self._last_id = max(self._last_id, tx.transaction_id)
        self._forget_finished()

    # -- operations (each returns a Change; nothing changes until apply) ------------------

    def start(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        started_at: dt.datetime,
        *,
        reservation_id: int | None = None,
        id_tag_status: str = "Accepted",
        received_at: dt.datetime | None = None,
    ) -> Change:
        """A StartTransaction. A repeat of one already recorded gets the same id
        (``retry``); otherwise a new id is taken now (it is never reused, even if the
        write fails) and a session still active on the connector is closed."""
        key = (cp_id, connector_id, id_tag, meter_start, started_at)
        known = self._txs.get(self._by_start.get(key, -1))
        if known is not None and (known.active or known.reconciled is not None):
            # the same start again (its answer was lost); a session the charger itself
            # stopped is over, so identical values mean a new session (an unset clock)
            return Change(transaction=known, retry=True)
        tx = Transaction(
            transaction_id=self._allocate(),
            cp_id=cp_id,
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start=meter_start,
            started_at=started_at,
            reservation_id=reservation_id,
            id_tag_status=id_tag_status,
            start_received_at=_ms(received_at),
        )
        return self._opened(tx)

    def _opened(self, tx: Transaction) -> Change:
        """A new session ``tx`` (its id just taken), closing one still active on its
        connector."""
        if tx.meter_start < 0:
            tx.flags.append(FLAG_STOP_BELOW_ACKNOWLEDGED)
        changed: tuple[Transaction, ...] = ()
        old = self.active_on(tx.cp_id, tx.connector_id)
        if old is not None:
            changed = (_closed(old, tx.started_at, RECONCILED_SUPERSEDED),)
        return Change(transaction=tx, new=(tx,), changed=changed)

    def event(
        self,
        cp_id: str,
        event: SessionEvent,
        *,
        received_at: dt.datetime,
        stored: Transaction | None = None,
    ) -> Change:
        """An OCPP 2.0.1 TransactionEvent. The session is found by the charger's id: an
        event repeated after a lost answer (a ``seqNo`` not above the last one recorded)
        is a ``retry``; the first event received opens the record whatever its kind (a
        lost Started is flagged, not a reason to drop the session); a ``seqNo`` that
        skips numbers is flagged; Ended stops the session like a StopTransaction.
        ``stored``: the session as the store has it, when the book does not (it finished
        long ago, or before a restart): the caller looks it up first."""
        if event.energy_wh is not None and not math.isfinite(event.energy_wh):
            event = dataclasses.replace(event, energy_wh=None)  # never let NaN or inf in
        if event.begin_energy_wh is not None and not math.isfinite(event.begin_energy_wh):
            event = dataclasses.replace(event, begin_energy_wh=None)
        known = self.of_charger(cp_id, event.charger_transaction_id)
        if known is None and stored is not None and stored.cp_id == cp_id:
            known = stored
        if known is None:
            return self._first_event(cp_id, event, received_at)
        if known.seq_no is not None and event.seq_no <= known.seq_no:
            # a resend; but not an Ended while no end is recorded (a station that lost
            # its counter numbers from 0 again: dropping it would leave the session open)
            if event.kind != ENDED or _stopped_by_charger(known):
                return Change(transaction=known, retry=True)
        if event.kind == ENDED:
            base = known
            if self._names_its_evse(cp_id, known, event):  # it ends where it ran
                base = dataclasses.replace(known, connector_id=event.connector_id)
            start = event.start_wh
            if (
                start is not None
                and FLAG_METER_START_UNKNOWN in known.flags
                and known.last_meter_wh is None
            ):  # its first register is the Ended's: the start as well
                base = dataclasses.replace(known, meter_start=math.floor(start))
            change = self.stop(
                cp_id,
                known.transaction_id,
                _meter_stop(base, event.energy_wh),
                event.timestamp,
                received_at=received_at,
                reason=event.reason or "Local",
                id_tag=event.id_tag,
                last_meter_wh=event.energy_wh,
                session=base,
            )
            if change.changed:
                _sequenced(change.changed[0], event.seq_no)
                _noted(change.changed[0], event)
            return change
        updated = dataclasses.replace(known, flags=list(known.flags))
        _sequenced(updated, event.seq_no)
        if self._names_its_evse(cp_id, known, event):
            updated.connector_id = event.connector_id
        if event.id_tag and not updated.id_tag:  # the token came after the cable
            updated.id_tag = event.id_tag
            updated.id_tag_status = event.id_tag_status
        _noted(updated, event)
        if known.active and event.energy_wh is not None:
            if FLAG_METER_START_UNKNOWN in updated.flags and updated.last_meter_wh is None:
                start = event.start_wh
                updated.meter_start = math.floor(event.energy_wh if start is None else start)
                updated.flags.remove(FLAG_METER_START_UNKNOWN)
            _acknowledge(updated, event.energy_wh, event.timestamp, self.max_power_w, received_at)
        alive: tuple[tuple[int, Doubt | None], ...] = ()
        if known.transaction_id in self._suspects:  # it reported the session: alive
            alive = ((known.transaction_id, None),)
        return Change(transaction=updated, changed=(updated,), doubts=alive)

    def _first_event(self, cp_id: str, event: SessionEvent, received_at: dt.datetime) -> Change:
        """The record of a 2.0.1 session opened by the first of its events received."""
        energy = event.start_wh
        tx = Transaction(
            transaction_id=self._allocate(),
            cp_id=cp_id,
            connector_id=event.connector_id,
            id_tag=event.id_tag or "",
            meter_start=0 if energy is None else math.floor(energy),
            started_at=event.timestamp,
            reservation_id=event.reservation_id,
            id_tag_status=event.id_tag_status,
            start_received_at=_ms(received_at),
            charger_transaction_id=event.charger_transaction_id,
            seq_no=event.seq_no,
        )
        _noted(tx, event)
        if energy is None:
            tx.flags.append(FLAG_METER_START_UNKNOWN)
        if event.kind != STARTED:
            tx.flags.append(FLAG_STARTED_UNSEEN)
        if event.kind != ENDED:
            return self._opened(tx)
        # the whole session in one event: recorded stopped at once (it supersedes
        # nothing: whatever runs on the connector now is another session)
        tx.meter_stop = tx.meter_start if event.energy_wh is None else math.floor(event.energy_wh)
        if tx.meter_stop < tx.meter_start:
            tx.flags.append(FLAG_STOP_BELOW_ACKNOWLEDGED)
        tx.stopped_at = event.timestamp
        tx.stop_reason = event.reason or "Local"
        return Change(transaction=tx, new=(tx,))

    def _names_its_evse(self, cp_id: str, known: Transaction, event: SessionEvent) -> bool:
        """Whether ``event`` moves ``known``, a running session booked on connector 0 (its
        first event named no EVSE), to the EVSE it now names (none other runs there)."""
        return (
            known.active
            and known.connector_id == 0
            and event.connector_id > 0
            and self.active_on(cp_id, event.connector_id) is None
        )

    def stop(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        stopped_at: dt.datetime,
        *,
        received_at: dt.datetime,
        reason: str = "Local",
        id_tag: str | None = None,
        last_meter_wh: float | None = None,
        session: Transaction | None = None,
    ) -> Change:
        """A StopTransaction (``last_meter_wh``: the last register in its
        transactionData, if any). Unknown ids, ids of another charger and conflicting
        repeats are kept as an :class:`UnmatchedStop`; a repeat is a ``retry``.
        ``session``: the transaction as the caller found it (a 2.0.1 session read back
        from the store, which the book may no longer hold), instead of the book's."""
        tx = self._txs.get(transaction_id) if session is None else session

        def unmatched(kind: str, owner: str | None = None) -> Change:
            return Change(
                unmatched=UnmatchedStop(
                    cp_id,
                    transaction_id,
                    meter_stop,
                    stopped_at,
                    reason,
                    id_tag,
                    received_at,
                    kind,
                    owner,
                )
            )

        if tx is None:
            return unmatched("unknown")
        if tx.cp_id != cp_id:
            return unmatched("foreign", tx.cp_id)
        if _stopped_by_charger(tx):  # the same stop again is a retry; other values conflict
            if tx.meter_stop == meter_stop:
                return Change(transaction=tx, retry=True)
            return unmatched("conflicting")
        done = dataclasses.replace(tx, flags=list(tx.flags))
        if last_meter_wh is not None:
            _acknowledge(done, last_meter_wh, stopped_at, self.max_power_w, received_at)
        acknowledged = max(done.meter_start, done.last_meter_wh or 0.0)
        if meter_stop < math.floor(acknowledged):  # meterStop is whole Wh, registers not
            _flag(done, FLAG_STOP_BELOW_ACKNOWLEDGED)
        if stopped_at < done.started_at:
            _flag(done, FLAG_STOP_BEFORE_START)
        elif self._implausible(done, meter_stop, stopped_at, received_at):
            _flag(done, FLAG_IMPLAUSIBLE_ENERGY)
        if (stopped_at - received_at).total_seconds() > CLOCK_AHEAD_S:
            _flag(done, FLAG_CLOCK_AHEAD)
        if not tx.active:  # the CSMS had closed it: record what the charger says
            _flag(done, FLAG_STOPPED_AFTER_RECONCILIATION)
        done.meter_stop = meter_stop
        done.stopped_at = stopped_at
        done.stop_reason = reason
        done.stop_id_tag = id_tag
        return Change(transaction=done, changed=(done,))

    def meter(
        self,
        cp_id: str,
        transaction_id: int | None,
        energy_wh: float | None,
        at: dt.datetime,
        received_at: dt.datetime | None = None,
    ) -> Change:
        """MeterValues for a transaction: the energy register is acknowledged if it does
        not go backwards (else the transaction is flagged). Confirms a doubted session."""
        tx = None if transaction_id is None else self._txs.get(transaction_id)
        if tx is None or tx.cp_id != cp_id:
            return Change()
        if not tx.active or energy_wh is None:
            return Change(transaction=tx)
        updated = dataclasses.replace(tx, flags=list(tx.flags))
        if not _acknowledge(updated, energy_wh, at, self.max_power_w, received_at):
            return Change(transaction=tx)
        return Change(transaction=updated, changed=(updated,))

    def confirm(self, transaction_id: int) -> Change:
        """The charger showed the session is alive (MeterValues with its id, a retried
        StartTransaction): it is no longer doubted."""
        if transaction_id not in self._suspects:
            return Change()
        return Change(doubts=((transaction_id, None),))

    def status(self, cp_id: str, connector_id: int, status: str, at: dt.datetime | None) -> Change:
        """A StatusNotification: Available or Preparing on a connector with an active
        session closes the session (reconciled); Charging and Suspended confirm it. A
        notification timestamped before the session started is ignored."""
        tx = self.active_on(cp_id, connector_id)
        if tx is None or (at is not None and at <= tx.started_at):
            return Change()
        if status in CONFIRMS_SESSION:
            return self.confirm(tx.transaction_id)
        if status in ENDS_SESSION:
            why = RECONCILED_AVAILABLE.format(status=status)
            closed = _closed(tx, at or tx.started_at, why)
            return Change(transaction=closed, changed=(closed,))
        return Change()

    def booted(self, cp_id: str, at: dt.datetime) -> Change:
        """The charger sent BootNotification: its active sessions are doubted until a
        StatusNotification or MeterValues shows them alive (see :meth:`expire`)."""
        return Change(
            doubts=tuple(
                (tx_id, Doubt(at, RECONCILED_REBOOT))
                for (cp, _), tx_id in self._active_on.items()
                if cp == cp_id and tx_id not in self._suspects
            )
        )

    def reply_lost(self, transaction_id: int, at: dt.datetime) -> Change:
        """The StartTransaction answer could not be sent: the charger may never have
        learnt the id. Doubted until it retries (same id) or shows the session."""
        if transaction_id not in self._txs or not self._txs[transaction_id].active:
            return Change()
        return Change(doubts=((transaction_id, Doubt(at, RECONCILED_REPLY_LOST, False)),))

    def reconnected(self, cp_id: str, at: dt.datetime) -> Change:
        """The charger is back: the grace period of a session doubted while it was away
        starts now (a charger offline for an hour with its messages queued is not judged
        on that). It starts once: reconnecting again does not restart it, so a flapping
        charger cannot keep a phantom session open."""
        return Change(
            doubts=tuple(
                (tx_id, dataclasses.replace(doubt, since=at, clock_running=True))
                for tx_id, doubt in self._suspects.items()
                if self._txs[tx_id].cp_id == cp_id and not doubt.clock_running
            )
        )

    def expire(self, now: dt.datetime, grace: float, connected: Iterable[str]) -> Change:
        """Close doubted sessions of connected chargers that stayed unconfirmed for
        ``grace`` seconds."""
        online = set(connected)
        closed = []
        for tx_id, suspect in self._suspects.items():
            tx = self._txs[tx_id]
            if tx.cp_id in online and (now - suspect.since).total_seconds() >= grace:
                closed.append(_closed(tx, now, suspect.why.format(grace=grace)))
        return Change(changed=tuple(closed))

    def doubted_chargers(self) -> set[str]:
        """Chargers with a doubted session (see :meth:`expire`)."""
        return {self._txs[i].cp_id for i in self._suspects}

    # -- applying ---------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """Make a change that the store has written part of the book."""
        for tx in (*change.changed, *change.new):
            self._put(tx)
        if change.retry and change.transaction is not None:
            self._suspects.pop(change.transaction.transaction_id, None)  # it retried: alive
        for tx_id, doubt in change.doubts:
            if doubt is None:
                self._suspects.pop(tx_id, None)
            elif tx_id in self._txs and self._txs[tx_id].active:
                self._suspects[tx_id] = doubt
        self._forget_finished()

    def _put(self, tx: Transaction) -> None:
        old = self._txs.get(tx.transaction_id)
        if old is not None and old.cp_id != tx.cp_id:
            raise ValueError(f"transaction {tx.transaction_id} belongs to {old.cp_id}")
        if old is not None and not old.active and tx.active:
            raise ValueError(f"transaction {tx.transaction_id} is stopped; it cannot reopen")
        key = (tx.cp_id, tx.connector_id, tx.id_tag, tx.meter_start, tx.started_at)
        if old is not None:  # a 2.0.1 session learns its start register, token or EVSE late
            stale = (old.cp_id, old.connector_id, old.id_tag, old.meter_start, old.started_at)
            if stale != key and self._by_start.get(stale) == tx.transaction_id:
                del self._by_start[stale]
            moved = (old.cp_id, old.connector_id)
            if (
                old.connector_id != tx.connector_id
                and self._active_on.get(moved) == tx.transaction_id
            ):
                del self._active_on[moved]
        self._txs[tx.transaction_id] = tx
        self._by_start[key] = tx.transaction_id
        if tx.charger_transaction_id is not None:
            self._by_charger_id[tx.cp_id, tx.charger_transaction_id] = tx.transaction_id
        where = (tx.cp_id, tx.connector_id)
        if tx.active:
            self._active_on[where] = tx.transaction_id
        else:
            if self._active_on.get(where) == tx.transaction_id:
                del self._active_on[where]
            self._suspects.pop(tx.transaction_id, None)
            if old is None or old.active:
                self._finished.append(tx.transaction_id)

    def _forget_finished(self) -> None:
        while len(self._finished) > self.keep_finished:
            tx = self._txs.get(self._finished.popleft())
            if tx is None or tx.active:
                continue
            del self._txs[tx.transaction_id]
            key = (tx.cp_id, tx.connector_id, tx.id_tag, tx.meter_start, tx.started_at)
            if self._by_start.get(key) == tx.transaction_id:
                del self._by_start[key]
            if tx.charger_transaction_id is not None:
                self._by_charger_id.pop((tx.cp_id, tx.charger_transaction_id), None)

    def _implausible(
        self, tx: Transaction, register: float, at: dt.datetime, received_at: dt.datetime
    ) -> bool:
        hours = _elapsed(tx, at, received_at) / 3600
        return register - tx.meter_start > self.max_power_w * hours + IMPLAUSIBLE_SLACK_WH


def _stopped_by_charger(tx: Transaction) -> bool:
    """Whether the charger's own stop of ``tx`` is recorded (not only the CSMS's)."""
    return not tx.active and (
        tx.reconciled is None or FLAG_STOPPED_AFTER_RECONCILIATION in tx.flags
    )


def _sequenced(tx: Transaction, seq_no: int) -> None:
    """Record ``seq_no`` on ``tx`` (a copy being planned), flagging a gap before it."""
    if tx.seq_no is not None and seq_no > tx.seq_no + 1:
        _flag(tx, FLAG_SEQUENCE_GAP)
    tx.seq_no = seq_no if tx.seq_no is None else max(tx.seq_no, seq_no)


def _noted(tx: Transaction, event: SessionEvent) -> None:
    """Record on ``tx`` (a copy being planned) what ``event`` tells of the session: the
    IdToken type unless it has one (the first event that carries an idToken sets it,
    nothing changes it afterwards), the Started / Ended event's triggerReason, and that
    the event was queued offline."""
    if tx.id_token_type is None and event.id_token_type is not None:
        tx.id_token_type = event.id_token_type
    if event.kind == STARTED and tx.started_by is None:
        tx.started_by = event.trigger_reason
    if event.kind == ENDED and tx.ended_by is None:
        tx.ended_by = event.trigger_reason
    if event.offline:
        _flag(tx, FLAG_REPORTED_OFFLINE)


def _meter_stop(tx: Transaction, energy_wh: float | None) -> int:
    """The meterStop of a 2.0.1 session ending: the register its Ended event carries,
    else the last one acknowledged (2.0.1 has no mandatory meterStop)."""
    if energy_wh is not None:
        return math.floor(energy_wh)
    return math.floor(max(float(tx.meter_start), tx.last_meter_wh or 0.0))


def _flag(tx: Transaction, flag: str) -> None:
    if flag not in tx.flags:
        tx.flags.append(flag)


def _ms(at: dt.datetime | None) -> dt.datetime | None:
    """``at`` to the millisecond: what the store keeps (a loaded row equals the book's)."""
    return None if at is None else at.replace(microsecond=at.microsecond // 1000 * 1000)


def _elapsed(tx: Transaction, at: dt.datetime, received_at: dt.datetime | None) -> float:
    """Seconds of the session up to ``at`` (the charger's clock), never more than the
    CSMS saw pass since the start arrived (plus CLOCK_TOLERANCE_S)."""
    seconds = max(0.0, (at - tx.started_at).total_seconds())
    if received_at is not None and tx.start_received_at is not None:
        seen = (received_at - tx.start_received_at).total_seconds() + CLOCK_TOLERANCE_S
        seconds = min(seconds, max(0.0, seen))
    return seconds


def _acknowledge(
    tx: Transaction,
    energy_wh: float,
    at: dt.datetime,
    max_power_w: float,
    received_at: dt.datetime | None = None,
) -> bool:
    """Take a register reading into ``tx`` (a copy); False when nothing changed. A time
    far ahead of the CSMS's clock is flagged and never widens the energy bound."""
    if not math.isfinite(energy_wh):
        return False  # NaN compares false with everything: never let it in
    acknowledged = tx.last_meter_wh if tx.last_meter_wh is not None else float(tx.meter_start)
    if energy_wh < acknowledged:
        if FLAG_METER_DECREASED in tx.flags:
            return False
        tx.flags.append(FLAG_METER_DECREASED)
        return True
    changed = False
    if received_at is not None and (at - received_at).total_seconds() > CLOCK_AHEAD_S:
        if FLAG_CLOCK_AHEAD not in tx.flags:
            tx.flags.append(FLAG_CLOCK_AHEAD)
            changed = True
    hours = _elapsed(tx, at, received_at) / 3600
    if energy_wh - tx.meter_start > max_power_w * hours + IMPLAUSIBLE_SLACK_WH:
        if FLAG_IMPLAUSIBLE_ENERGY in tx.flags:
            return changed
        tx.flags.append(FLAG_IMPLAUSIBLE_ENERGY)
        return True
    if energy_wh == tx.last_meter_wh:
        return changed
    tx.last_meter_wh = energy_wh
    return True


def _closed(tx: Transaction, at: dt.datetime, why: str) -> Transaction:
    """A copy of ``tx`` closed by the CSMS itself (no StopTransaction)."""
    end = tx.last_meter_wh if tx.last_meter_wh is not None else float(tx.meter_start)
    if not math.isfinite(end):
        end = float(tx.meter_start)
    return dataclasses.replace(
        tx,
        flags=list(tx.flags),
        meter_stop=round(end),
        stopped_at=max(at, tx.started_at),
        stop_reason="Other",
        reconciled=why,
    )
