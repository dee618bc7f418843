"""Validation of OCPP 1.6 and 2.0.1 payloads against the ``ocpp`` package's JSON schemas.

Synchronous and free of I/O after :func:`warm_up` (which reads a version's schemas once). The
``ocpp`` package's own ``validate_payload`` runs in an asyncio executor, so it is not used.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import decimal
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, Literal

import fastjsonschema
from jsonschema import Draft4Validator, Draft6Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from libv4e._errors import ErrorCode, OcppError
from libv4e.protocol._version import OcppVersion

V16 = OcppVersion.V16

Kind = Literal["call", "result"]

_format_checker = FormatChecker(formats=())


@_format_checker.checks("date-time", raises=ValueError)  # type: ignore[untyped-decorator]
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    _dt.datetime.fromisoformat(value)
    return True


def _fast_datetime(value: str) -> bool:
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """How strictly payloads are checked against the OCPP 1.6 schemas.

    Strict by default. ``lenient_actions`` names actions (``"*"`` for all) whose *inbound*
    payloads are repaired instead of refused when chargers in the field get them slightly
    wrong: unknown fields are dropped, numbers and booleans sent as strings are converted,
    enum values in the wrong case are corrected. Every repair is reported so it can be
    logged. Outbound payloads are always checked strictly. ``validate=False`` switches
    validation off entirely (not recommended outside benchmarks).
    """

    validate: bool = True
    lenient_actions: frozenset[str] = frozenset()

    @classmethod
    def lenient(cls, actions: Iterable[str] = ("*",)) -> ValidationPolicy:
        """A policy that repairs inbound payloads of ``actions`` (all by default)."""
        return cls(lenient_actions=frozenset(actions))

    def is_lenient(self, action: str) -> bool:
        """Whether inbound ``action`` payloads are repaired rather than refused."""
        return "*" in self.lenient_actions or action in self.lenient_actions


STRICT = ValidationPolicy()


@dataclasses.dataclass(slots=True)
class _Schema:
    raw: dict[str, Any]
    validator: Draft4Validator | Draft6Validator  # precise errors (slow): when the fast check fails
    fast: Callable[[Any], Any]  # fastjsonschema's compiled check (fast path)
    decimal_numbers: bool  # schema uses multipleOf: validate with Decimal numbers


_schemas: dict[tuple[OcppVersion, Kind, str], _Schema] = {}
_loaded: set[OcppVersion] = set()


def _schema_dir(version: OcppVersion) -> Any:
    return resources.files("ocpp") / version.package / "schemas"


def schema_name(kind: Kind, action: str, version: OcppVersion = V16) -> str:
    """The file name of ``action``'s schema in the ``ocpp`` package (1.6:
    ``Authorize.json`` / ``AuthorizeResponse.json``; 2.0.1: ``AuthorizeRequest.json`` /
    ``AuthorizeResponse.json``)."""
    if kind == "result":
        return f"{action}Response.json"
    return f"{action}.json" if version is V16 else f"{action}Request.json"


def warm_up(version: OcppVersion = V16) -> None:
    """Load and compile every schema of ``version`` once; later validation does no file
    I/O. The 2.0.1 schemas are draft-06 and checked as such."""
    if version in _loaded:
        return
    validator_class = Draft4Validator if version is V16 else Draft6Validator
    for entry in _schema_dir(version).iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        stem = name.removesuffix(".json")
        kind: Kind = "result" if stem.endswith("Response") else "call"
        action = stem.removesuffix("Response")
        if version is not V16:
            action = action.removesuffix("Request")
        text = entry.read_text(encoding="utf-8-sig")
        raw = json.loads(text)
        uses_decimal = '"multipleOf"' in text
        schema = json.loads(text, parse_float=decimal.Decimal) if uses_decimal else raw
        _schemas[version, kind, action] = _Schema(
            raw=raw,
            validator=validator_class(schema, format_checker=_format_checker),
            fast=fastjsonschema.compile(raw, formats={"date-time": _fast_datetime}),
            decimal_numbers=uses_decimal,
        )
    _loaded.add(version)


def schema_for(kind: Kind, action: str, version: OcppVersion = V16) -> dict[str, Any]:
    """The JSON schema (as a dict) of ``action``'s call or result payload."""
    warm_up(version)
    return _schemas[version, kind, action].raw


_SAYS = {
    "type": "must be of type {}",
    "maxLength": "must be at most {} characters",
    "minLength": "must be at least {} characters",
    "maximum": "must be at most {}",
    "minimum": "must be at least {}",
    "exclusiveMaximum": "must be below {}",
    "exclusiveMinimum": "must be above {}",
    "enum": "must be one of {}",
    "format": "must be a {}",
    "pattern": "must match {}",
    "maxItems": "must have at most {} items",
    "minItems": "must have at least {} items",
    "multipleOf": "must be a multiple of {}",
}
"""What a constraint asks, from the schema alone: an error never repeats the offending
value (it may be long, or a secret — a password set or reported — that would then be in
the answer, the message log and the peer's)."""


def _said(error: SchemaError) -> str:
    if error.validator in ("required", "additionalProperties", "additionalItems"):
        return str(error.message)  # names a property, not a value
    template = _SAYS.get(str(error.validator), f"must satisfy {error.validator} {{}}")
    return template.format(repr(error.validator_value)[:120])


def _error_for(error: SchemaError, kind: Kind, action: str) -> OcppError:
    where = "/".join(str(p) for p in error.absolute_path) or "(payload)"
    message = f"{action}{'Response' if kind == 'result' else ''}: {where}: {_said(error)}"
    details = {"field": where, "constraint": str(error.validator)}
    code: ErrorCode
    match error.validator:
        case "type":
            code = ErrorCode.TYPE_CONSTRAINT_VIOLATION
        case "required" | "minItems" | "maxItems":
            code = ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION
        case "additionalProperties" | "additionalItems":
            code = ErrorCode.FORMATION_VIOLATION
        case _:  # enum, maxLength, format, multipleOf, minimum, ...
            code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    return OcppError(code, message, details)


def validate(kind: Kind, action: str, payload: Any, version: OcppVersion = V16) -> None:
    """Check ``payload`` against ``version``'s schema; raise :class:`OcppError` (in 1.6's
    spelling: the session sends each version's own code).

    An unknown action raises ``NotImplemented``; a payload that is not a JSON object
    raises ``FormationViolation``.
    """
    warm_up(version)
    schema = _schemas.get((version, kind, action))
    if schema is None:
        raise OcppError(ErrorCode.NOT_IMPLEMENTED, f"Unknown action {action!r}")
    if not isinstance(payload, dict):
        raise OcppError(ErrorCode.FORMATION_VIOLATION, "Payload must be a JSON object")
    try:
        schema.fast(payload)
        return
    except fastjsonschema.JsonSchemaException:
        pass  # find the precise error below (float precision may also be a false alarm)
    instance = payload
    if schema.decimal_numbers:
        instance = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    errors = list(schema.validator.iter_errors(instance))
    if errors:
        # Report the error closest to the root: the one a person would fix first.
        raise _error_for(min(errors, key=lambda e: len(e.absolute_path)), kind, action)


def repair(
    kind: Kind, action: str, payload: Any, version: OcppVersion = V16
) -> tuple[Any, list[str]]:
    """Return a repaired copy of ``payload`` and the list of repairs made.

    Drops properties the schema does not allow, converts numeric and boolean strings, and
    fixes the case of enum values. The result still has to pass :func:`validate`.
    """
    warm_up(version)
    schema = _schemas.get((version, kind, action))
    if schema is None or not isinstance(payload, dict):
        return payload, []
    notes: list[str] = []
    fixed = _repair(schema.raw, schema.raw, copy.deepcopy(payload), "", notes)
    return fixed, notes


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        resolved: dict[str, Any] = root.get("definitions", {}).get(ref.split("/")[-1], node)
        return resolved
    return node


def _repair(
    root: dict[str, Any], node: dict[str, Any], value: Any, path: str, notes: list[str]
) -> Any:
    node = _resolve(root, node)
    kind = node.get("type")
    if kind == "object" and isinstance(value, dict):
        props: dict[str, Any] = node.get("properties", {})
        for key in list(value):
            if key in props:
                value[key] = _repair(root, props[key], value[key], f"{path}/{key}", notes)
            elif node.get("additionalProperties") is False:
                notes.append(f"dropped unknown field {path}/{key}")
                del value[key]
        return value
    if kind == "array" and isinstance(value, list) and isinstance(node.get("items"), dict):
        return [
            _repair(root, node["items"], item, f"{path}/{i}", notes) for i, item in enumerate(value)
        ]
    if isinstance(value, str):
        enum = node.get("enum")
        if enum and value not in enum:
            for candidate in enum:
                if isinstance(candidate, str) and candidate.lower() == value.lower():
                    notes.append(f"{path or '/'}: enum {value!r} read as {candidate!r}")
                    return candidate
        try:
            if kind == "integer":
                converted: Any = int(value)
            elif kind == "number":
                converted = float(value)
                if converted.is_integer() and "." not in value and "e" not in value.lower():
                    converted = int(value)
            elif kind == "boolean" and value.lower() in ("true", "false"):
                converted = value.lower() == "true"
            else:
                return value
        except ValueError:
            return value
        notes.append(f"{path or '/'}: string {value!r} read as {kind}")
        return converted
    return value
