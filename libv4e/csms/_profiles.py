"""Charging profiles as records (OCPP 1.6 Smart Charging): what the CSMS set on which
connector of which charger, the answer, and what replaced or cleared it. Plain state, no
I/O; the CSMS persists each change.

Lifecycle (:data:`PROFILE_TRANSITIONS`)::

    Pending --Accepted--> Installed --ClearChargingProfile matched, Accepted--> Cleared
       |                      |------ a newer profile replaced it ----------> Replaced
       |                      '------ its transaction ended (TxProfile) ----> Ended
       |--Rejected / NotSupported (the answer)--> that status
       '--no answer--> Unanswered

Replacement follows OCPP 1.6 (5.16.1): a profile with the same chargingProfileId on the
charger, or the same stackLevel and purpose on the same connector, is replaced.
ClearChargingProfile matching (5.4): with ``id``, the profile with that id (other criteria
are ignored); without it, every profile matching all the criteria given (connectorId,
chargingProfilePurpose, stackLevel; an absent criterion matches anything).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Iterator
from typing import Any

from libv4e.csms._books import StatusChange, note, step, take_fields
from libv4e.csms._registry import iso, parse_time


class ProfileStatus(enum.StrEnum):
    """Where a charging profile stands."""

    PENDING = "Pending"
    INSTALLED = "Installed"
    REJECTED = "Rejected"
    NOT_SUPPORTED = "NotSupported"
    UNANSWERED = "Unanswered"
    CLEARED = "Cleared"
    REPLACED = "Replaced"
    ENDED = "Ended"


class ProfileEvent(enum.StrEnum):
    """What can happen to a charging profile."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_SUPPORTED = "NotSupported"
    NO_ANSWER = "no_answer"
    CLEARED = "cleared"
    REPLACED = "replaced"
    TRANSACTION_ENDED = "transaction_ended"


PROFILE_TRANSITIONS: dict[tuple[ProfileStatus, ProfileEvent], ProfileStatus] = {
    (ProfileStatus.PENDING, ProfileEvent.ACCEPTED): ProfileStatus.INSTALLED,
    (ProfileStatus.PENDING, ProfileEvent.REJECTED): ProfileStatus.REJECTED,
    (ProfileStatus.PENDING, ProfileEvent.NOT_SUPPORTED): ProfileStatus.NOT_SUPPORTED,
    (ProfileStatus.PENDING, ProfileEvent.NO_ANSWER): ProfileStatus.UNANSWERED,
    (ProfileStatus.INSTALLED, ProfileEvent.CLEARED): ProfileStatus.CLEARED,
    (ProfileStatus.INSTALLED, ProfileEvent.REPLACED): ProfileStatus.REPLACED,
    (ProfileStatus.INSTALLED, ProfileEvent.TRANSACTION_ENDED): ProfileStatus.ENDED,
}
"""(status, event) → status. Statuses with no way out are final."""


@dataclasses.dataclass(slots=True)
class ChargingProfileRecord:
    """A charging profile the CSMS sent, where, and what became of it."""

    record_id: int
    cp_id: str
    connector_id: int
    charging_profile_id: int
    stack_level: int
    purpose: str
    profile: dict[str, Any]
    """The OCPP ChargingProfile as sent (camelCase JSON)."""
    set_at: dt.datetime
    source: str = "SetChargingProfile"
    """SetChargingProfile, or RemoteStartTransaction (its chargingProfile)."""
    status: str = ProfileStatus.PENDING
    transaction_id: int | None = None
    """For a TxProfile: the transaction it limits (when known)."""
    history: list[StatusChange] = dataclasses.field(default_factory=list)

    @property
    def installed(self) -> bool:
        """Whether the CSMS believes the charger holds it."""
        return self.status == ProfileStatus.INSTALLED

    def apply(self, event: ProfileEvent, at: dt.datetime, detail: str | None = None) -> str:
        """Take ``event`` (InvalidTransition if not possible); returns the new status."""
        self.status = step(PROFILE_TRANSITIONS, ProfileStatus(self.status), event)
        note(self.history, StatusChange(at, self.status, detail))
        return self.status

    def matches_clear(
        self,
        profile_id: int | None,
        connector_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> bool:
        """Whether a ClearChargingProfile with these criteria clears this profile."""
        if profile_id is not None:
            return self.charging_profile_id == profile_id
        return (
            connector_id in (None, self.connector_id)
            and purpose in (None, self.purpose)
            and stack_level in (None, self.stack_level)
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "record_id": self.record_id,
            "cp_id": self.cp_id,
            "connector_id": self.connector_id,
            "charging_profile_id": self.charging_profile_id,
            "stack_level": self.stack_level,
            "purpose": self.purpose,
            "status": self.status,
            "installed": self.installed,
            "source": self.source,
            "transaction_id": self.transaction_id,
            "set_at": iso(self.set_at),
            "charging_profile": self.profile,
            "history": [h.as_dict() for h in self.history],
        }


class ProfileBook:
    """Every charging profile record the CSMS keeps in memory (installed and recent)."""

    def __init__(self) -> None:
        self._records: dict[int, ChargingProfileRecord] = {}
        self._last_id = 0

    def __iter__(self) -> Iterator[ChargingProfileRecord]:
        return iter(sorted(self._records.values(), key=lambda r: r.record_id))

    def get(self, record_id: int) -> ChargingProfileRecord | None:
        """A record by its id."""
        return self._records.get(record_id)

    def load(self, records: list[ChargingProfileRecord], last_id: int) -> None:
        """Replace the book's content (e.g. from a store)."""
        self._records = {r.record_id: r for r in records}
        self._last_id = max([last_id, *self._records])

    def of(self, cp_id: str) -> list[ChargingProfileRecord]:
        """The records of one charger, oldest first."""
        return [r for r in self if r.cp_id == cp_id]

    def installed(self, cp_id: str, connector_id: int | None = None) -> list[ChargingProfileRecord]:
        """Profiles believed installed on ``cp_id`` (on ``connector_id`` if given)."""
        return [r for r in self.of(cp_id) if r.installed and connector_id in (None, r.connector_id)]

    def sent(
        self,
        cp_id: str,
        connector_id: int,
        profile: dict[str, Any],
        now: dt.datetime,
        *,
        source: str = "SetChargingProfile",
        transaction_id: int | None = None,
    ) -> ChargingProfileRecord:
        """Record a profile about to be sent (camelCase OCPP ChargingProfile); Pending."""
        self._last_id += 1
        record = ChargingProfileRecord(
            record_id=self._last_id,
            cp_id=cp_id,
            connector_id=connector_id,
            charging_profile_id=int(profile["chargingProfileId"]),
            stack_level=int(profile["stackLevel"]),
            purpose=str(profile["chargingProfilePurpose"]),
            profile=profile,
            set_at=now,
            source=source,
            transaction_id=profile.get("transactionId", transaction_id),
        )
        note(record.history, StatusChange(now, record.status, f"{source} sent"))
        self._records[record.record_id] = record
        return record

    def answered(
        self, record_id: int, status: str, now: dt.datetime
    ) -> list[ChargingProfileRecord]:
        """Record the answer to the profile's sending; returns every record that changed
        (with Accepted, the profiles it replaced)."""
        record = self._records[record_id]
        if record.status != ProfileStatus.PENDING:
            return []
        changed = [record]
        if status == "Accepted":
            for other in self.installed(record.cp_id):
                same_id = other.charging_profile_id == record.charging_profile_id
                same_slot = (other.connector_id, other.purpose, other.stack_level) == (
                    record.connector_id,
                    record.purpose,
                    record.stack_level,
                )
                if other is not record and (same_id or same_slot):
                    other.apply(
                        ProfileEvent.REPLACED, now, f"replaced by record {record.record_id}"
                    )
                    changed.append(other)
        record.apply(ProfileEvent(status), now, f"answered {status}")
        return changed

    def unanswered(self, record_id: int, reason: str, now: dt.datetime) -> ChargingProfileRecord:
        """Record that the profile's sending got no answer."""
        record = self._records[record_id]
        if record.status == ProfileStatus.PENDING:
            record.apply(ProfileEvent.NO_ANSWER, now, reason)
        return record

    def matching(
        self,
        cp_id: str,
        profile_id: int | None,
        connector_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> list[ChargingProfileRecord]:
        """Installed profiles a ClearChargingProfile with these criteria would clear."""
        return [
            r
            for r in self.installed(cp_id)
            if r.matches_clear(profile_id, connector_id, purpose, stack_level)
        ]

    def cleared(
        self, records: Iterable[ChargingProfileRecord], now: dt.datetime
    ) -> list[ChargingProfileRecord]:
        """Mark ``records`` Cleared (after a ClearChargingProfile answered Accepted)."""
        done = []
        for record in records:
            if record.installed:
                record.apply(ProfileEvent.CLEARED, now, "ClearChargingProfile answered Accepted")
                done.append(record)
        return done

    def plan_started(
        self, cp_id: str, connector_id: int, transaction_id: int
    ) -> list[ChargingProfileRecord]:
        """A transaction started on ``connector_id``: the TxProfiles it binds, as copies
        (the book unchanged; :meth:`put` takes them once written): the unbound ones
        installed on that connector, and on connector 0 (a RemoteStartTransaction that let
        the charger choose: the record then names the connector)."""
        planned = []
        for record in self._records.values():
            if (
                record.cp_id != cp_id
                or not record.installed
                or record.purpose != "TxProfile"
                or record.transaction_id is not None
                or record.connector_id not in (0, connector_id)
            ):
                continue
            bound = copy.deepcopy(record)
            bound.transaction_id, bound.connector_id = transaction_id, connector_id
            planned.append(bound)
        return planned

    def plan_ended(
        self, cp_id: str, transaction_id: int, now: dt.datetime
    ) -> list[ChargingProfileRecord]:
        """A transaction ended: the TxProfiles bound to it become Ended, as copies."""
        planned = []
        for record in self._records.values():
            if (
                record.cp_id == cp_id
                and record.installed
                and record.purpose == "TxProfile"
                and record.transaction_id == transaction_id
            ):
                ended = copy.deepcopy(record)
                ended.apply(
                    ProfileEvent.TRANSACTION_ENDED, now, f"transaction {transaction_id} ended"
                )
                planned.append(ended)
        return planned

    def put(self, records: Iterable[ChargingProfileRecord]) -> None:
        """Take planned records (written): the ones held are updated in place."""
        for record in records:
            held = self._records.get(record.record_id)
            if held is None:
                self._records[record.record_id] = record
            else:
                take_fields(held, record)
            self._last_id = max(self._last_id, record.record_id)

    def end_transactions(
        self, active: dict[tuple[str, int], int], now: dt.datetime, cp_id: str | None = None
    ) -> list[ChargingProfileRecord]:
        """TxProfiles whose transaction ended are Ended. ``active`` maps (cp_id, connector)
        to the transaction running there; a TxProfile not yet bound to a transaction is
        bound to the one running on its connector. Returns the records that changed."""
        changed = []
        for record in self._records.values():
            if not record.installed or record.purpose != "TxProfile":
                continue
            if cp_id not in (None, record.cp_id):
                continue
            running = active.get((record.cp_id, record.connector_id))
            if record.transaction_id is None:
                if running is None and record.connector_id == 0:
                    # RemoteStartTransaction without a connector: the charger chose one
                    chosen = [(t, c) for (cp, c), t in active.items() if cp == record.cp_id]
                    if chosen:
                        running, record.connector_id = max(chosen)
                if running is not None:
                    record.transaction_id = running
                    changed.append(record)
                continue
            if running != record.transaction_id:
                record.apply(
                    ProfileEvent.TRANSACTION_ENDED,
                    now,
                    f"transaction {record.transaction_id} ended",
                )
                changed.append(record)
        return changed

    def forget_finished(self, keep: int) -> None:
        """Drop all but the ``keep`` newest records that are no longer installed."""
        finished = [
            r for r in self if r.status not in (ProfileStatus.INSTALLED, ProfileStatus.PENDING)
        ]
        for record in finished[: max(0, len(finished) - keep)]:
            del self._records[record.record_id]


def limit_at(
    profiles: Iterable[ChargingProfileRecord], at: dt.datetime
) -> tuple[float, str, int] | None:
    """What the CSMS believes limits a connector at ``at``: per purpose the valid profile
    with the highest stack level, a TxProfile overriding TxDefaultProfile, the lowest of
    that and ChargePointMaxProfile. Returns (limit, unit, record_id) or None. Limits in
    different units are not combined (the first unit found wins)."""
    best: dict[str, tuple[int, float, str, int]] = {}
    for record in profiles:
        value = _period_limit(record.profile, at)
        if value is None:
            continue
        limit, unit = value
        current = best.get(record.purpose)
        if current is None or record.stack_level > current[0]:
            best[record.purpose] = (record.stack_level, limit, unit, record.record_id)
    tx = best.get("TxProfile") or best.get("TxDefaultProfile")
    candidates = [c for c in (tx, best.get("ChargePointMaxProfile")) if c is not None]
    if not candidates:
        return None
    unit = candidates[0][2]
    same_unit = [c for c in candidates if c[2] == unit]
    _, limit, unit, record_id = min(same_unit, key=lambda c: c[1])
    return limit, unit, record_id


def _period_limit(profile: dict[str, Any], at: dt.datetime) -> tuple[float, str] | None:
    """The limit a profile's schedule sets at ``at`` (None if not valid then)."""
    valid_from = parse_time(profile.get("validFrom"))
    valid_to = parse_time(profile.get("validTo"))
    if (valid_from and at < valid_from) or (valid_to and at >= valid_to):
        return None
    schedule = profile.get("chargingSchedule") or {}
    start = parse_time(schedule.get("startSchedule")) or parse_time(profile.get("validFrom"))
    elapsed = (at - start).total_seconds() if start else 0.0
    if profile.get("chargingProfileKind") == "Recurring" and start is not None:
        period = 7 * 86400 if profile.get("recurrencyKind") == "Weekly" else 86400
        elapsed %= period
    duration = schedule.get("duration")
    if elapsed < 0 or (duration is not None and elapsed >= duration):
        return None
    periods = sorted(schedule.get("chargingSchedulePeriod") or [], key=lambda p: p["startPeriod"])
    current = None
    for p in periods:
        if p["startPeriod"] <= elapsed:
            current = p
    if current is None:
        return None
    return float(current["limit"]), str(schedule.get("chargingRateUnit", "W"))
