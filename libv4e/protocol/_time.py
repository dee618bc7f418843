"""Time, in one place: the wall clock (the Trio shells — transport, central system,
charger — take it as their default ``clock``; the sans-IO session never reads it) and
OCPP date-time strings both ways."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def parse_time(value: str | None) -> dt.datetime | None:
    """An OCPP date-time string as an aware datetime (UTC if no offset), or None."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    """An aware datetime as an OCPP date-time string (UTC, ``Z``, milliseconds)."""
    if value.tzinfo is dt.UTC:  # the common case (per logged message): no conversion
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
