"""Bounds on the numbers a peer's call may carry, checked after schema validation (and also
when a policy turns validation off) and before any handler, so before anything reaches
the books or the store.

The OCPP 1.6 JSON schemas say ``"type": "integer"`` with no range; Python integers have
none either, so ``connectorId: 2**63`` or ``meterStart: 1e30`` passed validation and
reached SQLite (an OverflowError there) or the books. OCPP's integers are 32-bit; some
fields cannot be negative. JSON also lets Python read ``NaN`` and ``Infinity``. Every
violation is answered ``PropertyConstraintViolation``. Strings need no pass of their own
(the schemas bound most of them and the frame size limit bounds the rest), except
date-times, which must exist in UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any

from libv4e._errors import ErrorCode, OcppError
from libv4e.protocol._validation import Kind, schema_for
from libv4e.protocol._version import OcppVersion

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
NON_NEGATIVE = frozenset(
    {
        "connectorId",
        "meterStart",
        "meterStop",
        "numberPhases",
        "listVersion",
        "retries",
        "retryInterval",
        "duration",
        "stackLevel",
        "chargingProfileId",
        "reservationId",
    }
)
"""Integer fields that cannot be negative, wherever they appear."""
NON_NEGATIVE_201 = NON_NEGATIVE | {"evseId", "evse.id", "seqNo", "requestId"}
"""The same in OCPP 2.0.1, which adds EVSE ids (``evseId``, and an ``evse`` object's
``id``), message sequence numbers and request ids (1.6's security extension's
``requestId`` is left as 1.6 always took it). A dotted name is a field of an object
of that name."""
POSITIVE: dict[str, tuple[str, ...]] = {
    "StartTransaction": ("connectorId",),  # a session runs on a connector, never on 0
}
"""Per action: top-level integer fields that must be at least 1."""

_Tree = dict[str, Any]  # field name -> "integer" | "number" | subtree (objects and arrays)


@functools.cache
def _tree(kind: Kind, action: str, version: OcppVersion = OcppVersion.V16) -> _Tree:
    schema = schema_for(kind, action, version)
    return _walk_schema(schema, schema) or {}


def _walk_schema(node: dict[str, Any], root: dict[str, Any]) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str):
        node = root.get("definitions", {}).get(ref.split("/")[-1], {})
    kind = node.get("type")
    if kind in ("integer", "number"):
        return kind
    if kind == "string" and node.get("format") == "date-time":
        return "date-time"
    if kind == "array":
        return _walk_schema(node.get("items", {}), root)
    if kind == "object":
        tree = {}
        for name, sub in node.get("properties", {}).items():
            found = _walk_schema(sub, root)
            if found:
                tree[name] = found
        return tree or None
    return None


def check(
    kind: Kind, action: str, payload: dict[str, Any], version: OcppVersion = OcppVersion.V16
) -> None:
    """Raise :class:`OcppError` (PropertyConstraintViolation) if a number in ``payload``
    (already schema-valid) is out of range."""
    non_negative = NON_NEGATIVE if version is OcppVersion.V16 else NON_NEGATIVE_201
    _check_object(_tree(kind, action, version), payload, "", non_negative)
    if kind == "call" and version is OcppVersion.V16:
        for name in POSITIVE.get(action, ()):
            value = payload.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise _violation(name, f"must be at least 1 in {action}")


def _check_object(
    tree: _Tree, data: Any, path: str, non_negative: frozenset[str] = NON_NEGATIVE
) -> None:
    if isinstance(data, list):
        for i, item in enumerate(data):
            _check_object(tree, item, f"{path}[{i}]", non_negative)
        return
    if not isinstance(data, dict):
        return
    for name, sub in tree.items():
        if name not in data:
            continue
        value, where = data[name], f"{path}.{name}" if path else name
        if sub == "integer":
            owned = ".".join(where.split(".")[-2:])  # "evse.id": ``id`` in an ``evse``
            _check_int(value, where, name in non_negative or owned in non_negative)
        elif sub == "number":
            if not _finite(value):
                raise _violation(where, "must be a finite number")
        elif sub == "date-time":
            _check_time(value, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(sub, str):
                    _check_leaf(sub, item, f"{where}[{i}]", name in non_negative)
                else:
                    _check_object(sub, item, f"{where}[{i}]", non_negative)
        else:
            _check_object(sub, value, where, non_negative)


def _check_leaf(kind: str, value: Any, where: str, non_negative: bool) -> None:
    if kind == "date-time":
        _check_time(value, where)
    elif kind == "integer":
        _check_int(value, where, non_negative)
    elif not _finite(value):
        raise _violation(where, "must be a finite number")


def _finite(value: Any) -> bool:
    """A number a float holds (JSON integers are unbounded: ``1e400`` written out in
    digits parses as an int that no float holds)."""
    if not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_int(value: Any, where: str, non_negative: bool) -> None:
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _violation(where, "must be an integer")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return  # the schema pass reports wrong types
    low = 0 if non_negative else INT_MIN
    if not low <= value <= INT_MAX:
        raise _violation(where, f"must be between {low} and {INT_MAX}")


def _check_time(value: Any, where: str) -> None:
    """A date-time must exist in UTC: ``9999-12-31T23:00:00-05:00`` is valid RFC 3339 but
    is year 10000 in UTC (and ``0001-01-01T00:00:00+01:00`` year 0), which no datetime
    can hold: stored, it broke every later rendering of the charger (and of the fleet)."""
    if not isinstance(value, str):
        return  # the schema pass reports wrong types
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return  # not a date-time Python reads: the readers treat it as absent
    if parsed.tzinfo is None:
        return  # read as UTC as it is
    try:
        parsed.astimezone(dt.UTC)
    except OverflowError:
        raise _violation(where, "is outside the years 1-9999 in UTC") from None


def _violation(where: str, what: str) -> OcppError:
    return OcppError(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, f"{where} {what}", {"field": where})
