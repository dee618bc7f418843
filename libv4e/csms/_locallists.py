"""Local authorization lists per charger (OCPP 1.6 Local Auth List Management): what the
CSMS sent to each charger, the version it sent, the answer, and the list the charger is
believed to hold. Plain state, no I/O; the CSMS persists each change.

An update's lifecycle (:data:`UPDATE_TRANSITIONS`)::

    Pending --Accepted | Failed | NotSupported | VersionMismatch (the answer)--> that status
       '--no answer--> Unanswered

Only an Accepted update changes the believed list and version: a Full update replaces the
list, a Differential one adds/updates its entries and removes those without idTagInfo.
The believed list is ``complete`` once a Full update was accepted (before that only the
entries sent since are known). GetLocalListVersion answers are recorded as
``reported_version``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any

from libv4e.csms._auth import IdTag
from libv4e.csms._books import HISTORY_LIMIT, InvalidTransition, step
from libv4e.csms._registry import iso


class UpdateStatus(enum.StrEnum):
    """Where one SendLocalList stands."""

    PENDING = "Pending"
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    NOT_SUPPORTED = "NotSupported"
    VERSION_MISMATCH = "VersionMismatch"
    UNANSWERED = "Unanswered"


UPDATE_TRANSITIONS: dict[tuple[UpdateStatus, str], UpdateStatus] = {
    (UpdateStatus.PENDING, "Accepted"): UpdateStatus.ACCEPTED,
    (UpdateStatus.PENDING, "Failed"): UpdateStatus.FAILED,
    (UpdateStatus.PENDING, "NotSupported"): UpdateStatus.NOT_SUPPORTED,
    (UpdateStatus.PENDING, "VersionMismatch"): UpdateStatus.VERSION_MISMATCH,
    (UpdateStatus.PENDING, "no_answer"): UpdateStatus.UNANSWERED,
}
"""(status, answer) → status: an update is answered once."""


@dataclasses.dataclass(slots=True)
class LocalListUpdate:
    """One SendLocalList sent to a charger."""

    list_version: int
    update_type: str
    """Full or Differential."""
    upserts: list[IdTag]
    removals: list[str]
    sent_at: dt.datetime
    status: str = UpdateStatus.PENDING
    answered_at: dt.datetime | None = None
    detail: str | None = None

    def answer(self, answer: str, at: dt.datetime, detail: str | None = None) -> None:
        """Record the charger's answer (or ``no_answer``)."""
        self.status = step(UPDATE_TRANSITIONS, UpdateStatus(self.status), answer)
        self.answered_at, self.detail = at, detail

    def as_dict(self, *, entries: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (with the entries sent if ``entries``)."""
        data: dict[str, Any] = {
            "list_version": self.list_version,
            "update_type": self.update_type,
            "upserts": len(self.upserts),
            "removals": len(self.removals),
            "status": self.status,
            "sent_at": iso(self.sent_at),
            "answered_at": None if self.answered_at is None else iso(self.answered_at),
            "detail": self.detail,
        }
        if entries:
            data["local_authorization_list"] = [_entry(t) for t in self.upserts] + [
                {"id_tag": r, "id_tag_info": None} for r in self.removals
            ]
        return data


@dataclasses.dataclass(slots=True)
class ChargerLocalList:
    """The CSMS's view of one charger's local list."""

    cp_id: str
    list_version: int | None = None
    """The version of the last accepted update (None: nothing accepted yet)."""
    entries: dict[str, IdTag] = dataclasses.field(default_factory=dict)
    complete: bool = False
    """Whether ``entries`` is the charger's whole list (a Full update was accepted)."""
    reported_version: int | None = None
    """What the charger last answered to GetLocalListVersion (−1: not supported)."""
    reported_at: dt.datetime | None = None
    updates: list[LocalListUpdate] = dataclasses.field(default_factory=list)
    """The last updates sent, oldest first."""

    @property
    def last_update(self) -> LocalListUpdate | None:
        """The most recent update sent."""
        return self.updates[-1] if self.updates else None

    def last_sent_version(self) -> int:
        """The highest version sent or accepted so far (0 if none)."""
        versions = [u.list_version for u in self.updates]
        return max([self.list_version or 0, self.reported_version or 0, *versions])

    def as_dict(self, *, entries: bool = True) -> dict[str, Any]:
        """A JSON-ready dict."""
        last = self.last_update
        data: dict[str, Any] = {
            "cp_id": self.cp_id,
            "list_version": self.list_version,
            "reported_version": self.reported_version,
            "reported_at": None if self.reported_at is None else iso(self.reported_at),
            "complete": self.complete,
            "size": len(self.entries),
            "last_update": None if last is None else last.as_dict(),
            "updates": [u.as_dict() for u in self.updates],
        }
        if entries:
            data["local_authorization_list"] = [
                _entry(t) for t in sorted(self.entries.values(), key=lambda t: t.id_tag)
            ]
        return data


class LocalListBook:
    """Every charger's local list as the CSMS knows it."""

    def __init__(self) -> None:
        self._lists: dict[str, ChargerLocalList] = {}

    def __iter__(self) -> Iterator[ChargerLocalList]:
        return iter(sorted(self._lists.values(), key=lambda s: s.cp_id))

    def load(self, lists: list[ChargerLocalList]) -> None:
        """Replace the book's content (e.g. from a store)."""
        self._lists = {s.cp_id: s for s in lists}

    def get(self, cp_id: str) -> ChargerLocalList | None:
        """One charger's list, if anything was ever sent or reported."""
        return self._lists.get(cp_id)

    def of(self, cp_id: str) -> ChargerLocalList:
        """One charger's list (created empty when unknown)."""
        state = self._lists.get(cp_id)
        if state is None:
            state = self._lists[cp_id] = ChargerLocalList(cp_id)
        return state

    def next_version(self, cp_id: str, csms_version: int) -> int:
        """The version to send when the caller gives none: the CSMS's list version, or
        one above anything this charger was sent or reported, whichever is higher."""
        return max(csms_version, self.of(cp_id).last_sent_version() + 1)

    def sending(
        self,
        cp_id: str,
        list_version: int,
        update_type: str,
        upserts: list[IdTag],
        removals: list[str],
        now: dt.datetime,
    ) -> LocalListUpdate:
        """Record a SendLocalList about to be sent (Pending)."""
        if update_type not in ("Full", "Differential"):
            raise InvalidTransition(f"unknown update type {update_type!r}")
        if update_type == "Full" and removals:
            raise InvalidTransition("a Full update cannot remove entries")
        update = LocalListUpdate(list_version, update_type, upserts, removals, now)
        state = self.of(cp_id)
        state.updates.append(update)
        del state.updates[:-HISTORY_LIMIT]
        return update

    def answered(
        self,
        cp_id: str,
        update: LocalListUpdate,
        answer: str,
        now: dt.datetime,
        detail: str | None = None,
    ) -> ChargerLocalList:
        """Record the answer (or ``no_answer``) to ``update``; Accepted changes the list."""
        update.answer(answer, now, detail)
        state = self.of(cp_id)
        if update.status == UpdateStatus.ACCEPTED:
            if update.update_type == "Full":
                state.entries = {t.id_tag: t for t in update.upserts}
                state.complete = True
            else:
                for tag in update.upserts:
                    state.entries[tag.id_tag] = tag
                for id_tag in update.removals:
                    state.entries.pop(id_tag, None)
            state.list_version = update.list_version
        return state

    def reported(self, cp_id: str, version: int, now: dt.datetime) -> ChargerLocalList:
        """Record a GetLocalListVersion answer."""
        state = self.of(cp_id)
        state.reported_version, state.reported_at = version, now
        return state


def _entry(tag: IdTag) -> dict[str, Any]:
    info = tag.as_dict()
    return {
        "id_tag": tag.id_tag,
        "id_tag_info": {k: info[k] for k in ("status", "expiry_date", "parent_id_tag")},
    }
