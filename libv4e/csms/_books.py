"""Shared pieces of the CSMS's operator books (reservations, charging profiles, local
lists): a status change record and the one way a record's status moves, through a table."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeVar

from libv4e._errors import InvalidTransition as InvalidTransition
from libv4e.csms._registry import iso

S = TypeVar("S")
E = TypeVar("E")


def take_fields(held: Any, newer: Any) -> None:
    """Make the record ``held`` what ``newer`` says (field by field, in place: a command
    in flight holds the object)."""
    for field in dataclasses.fields(held):
        setattr(held, field.name, getattr(newer, field.name))


HISTORY_LIMIT = 20
"""Status changes kept per record (the oldest are dropped first)."""


@dataclasses.dataclass(slots=True)
class StatusChange:
    """One step of a record's life: when, into which status, and why."""

    at: dt.datetime
    status: str
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"at": iso(self.at), "status": self.status, "detail": self.detail}


def step(table: Mapping[tuple[S, E], S], status: S, event: E) -> S:
    """The status ``event`` leads to from ``status`` (InvalidTransition if none)."""
    new = table.get((status, event))
    if new is None:
        raise InvalidTransition(f"{event} is not possible in status {status}")
    return new


def note(history: list[StatusChange], change: StatusChange) -> None:
    """Append ``change``, keeping at most :data:`HISTORY_LIMIT` entries."""
    history.append(change)
    del history[:-HISTORY_LIMIT]
