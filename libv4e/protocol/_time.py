"""The wall clock, in one place: the Trio shells (transport, central system, charger)
take it as their default ``clock``; the sans-IO session never reads it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)
