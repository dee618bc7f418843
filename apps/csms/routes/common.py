"""What several route modules share: charge points as JSON, the 404 for an unknown one,
and relaying a call to a charger (its failures through :func:`translate_error`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from libv4e import Libv4eError
from libv4e.csms import CentralSystem, ChargePointState, Outcome, redact_payload
from libv4e.protocol import to_json_payload

from ..errors import translate_error

log = logging.getLogger("libv4e.api")


def describe(csms: CentralSystem, states: Iterable[ChargePointState]) -> list[dict[str, Any]]:
    """Charge points as JSON, each with its active transactions (one pass over them).
    A state that cannot be rendered costs only itself: it is listed as
    ``{"cp_id", "error": "unrenderable_state"}`` and logged, the others are whole."""
    at, active = csms.clock(), csms.active_transactions()
    described = []
    for state in states:
        try:
            data = state.as_dict(at, csms.registry.offline_tolerance)
            data["active_transactions"] = [t.as_dict() for t in active.get(state.cp_id, [])]
        except Exception as exc:  # one record, not the fleet's listing
            log.error("%s: state cannot be rendered: %r", state.cp_id, exc)
            data = {"cp_id": state.cp_id, "error": "unrenderable_state"}
        described.append(data)
    return described


def charger_or_404(csms: CentralSystem, cp_id: str) -> ChargePointState:
    """The state of ``cp_id``; 404 if the CSMS does not know it (UnknownChargerError,
    translated by ``errors.translate_error``)."""
    return csms.registry.require(cp_id)


async def answered(outcome: Outcome) -> Any:
    """The answer of a command's :class:`~libv4e.csms.Outcome` (its error raised), to
    :func:`relay`."""
    return outcome.answer()


async def relay(cp_id: str, exchange: Awaitable[Any]) -> dict[str, Any]:
    """Await a call to a charger; its answer as JSON, or an ApiError for each failure."""
    try:
        result = await exchange
    except Libv4eError as exc:
        raise translate_error(exc, cp_id) from exc
    data = to_json_payload(result)
    hidden = redact_payload(None, data)  # AuthorizationKey is write-only, also in answers
    return data if hidden is None else hidden


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC if it has no time zone."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
