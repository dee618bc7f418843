"""Typed payloads: ``ocpp.v16`` and ``ocpp.v201`` dataclasses (snake_case) ⇄ OCPP-J
JSON (camelCase).

One cattrs converter. A few ``ocpp.v16`` fields are annotated as bare ``List``/``Dict``;
they are refined here to the datatype the schema describes, so handlers receive
``MeterValue``/``SampledValue`` objects rather than raw camelCase dicts.

Which fields are required follows the JSON schemas' ``required`` lists, for every action
and every nested object, never the dataclass signatures: a few ``ocpp.v16`` dataclasses
declare a field the schema makes optional without a default (``SecurityEventNotification.
tech_info``, ``LogStatusNotification.request_id``, the members of ``CertificateHashData``
…). Such a field, absent from the JSON, arrives as ``None``; ``None`` in an optional field
is left out of the JSON.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import typing
from collections.abc import Callable
from importlib import resources
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from ocpp.v16 import call, call_result, datatypes
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as call_result201
from ocpp.v201 import datatypes as datatypes201

from libv4e._errors import ErrorCode, OcppError
from libv4e.protocol._validation import schema_name
from libv4e.protocol._version import OcppVersion

# Fields whose annotation in ocpp.v16 is too loose, with the type the schema describes.
_REFINED: dict[tuple[type[Any], str], Any] = {
    (call.GetConfiguration, "key"): list[str] | None,
    (call.MeterValues, "meter_value"): list[datatypes.MeterValue],
    (call.StopTransaction, "transaction_data"): list[datatypes.MeterValue] | None,
    (call.SendLocalList, "local_authorization_list"): list[datatypes.AuthorizationData],
    (call.RemoteStartTransaction, "charging_profile"): datatypes.ChargingProfile | None,
    (call.SetChargingProfile, "cs_charging_profiles"): datatypes.ChargingProfile,
    (call.DeleteCertificate, "certificate_hash_data"): datatypes.CertificateHashData,
    (call.GetLog, "log"): datatypes.LogParameters,
    (call.SignedUpdateFirmware, "firmware"): datatypes.Firmware,
    (call_result.GetConfiguration, "configuration_key"): list[datatypes.KeyValue] | None,
    (call_result.GetConfiguration, "unknown_key"): list[str] | None,
    (call_result.GetCompositeSchedule, "charging_schedule"): datatypes.ChargingSchedule | None,
    (call_result.GetInstalledCertificateIds, "certificate_hash_data"): (
        list[datatypes.CertificateHashData] | None
    ),
    # ocpp.v201 annotates it as a list of the status enum; the schema's items are objects
    (call_result201.ClearVariableMonitoring, "clear_monitoring_result"): (
        list[datatypes201.ClearMonitoringResultType]
    ),
}


def _schema_file(kind: str, action: str, version: OcppVersion) -> dict[str, Any]:
    name = schema_name("result" if kind == "result" else "call", action, version)
    data: dict[str, Any] = json.loads(
        (resources.files("ocpp") / version.package / "schemas" / name).read_text(
            encoding="utf-8-sig"
        )
    )
    return data


def _deref(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _dataclass_in(annotation: Any) -> type[Any] | None:
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    for arg in typing.get_args(annotation):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _collect_optional(
    cls: type[Any], root: dict[str, Any], node: dict[str, Any], into: dict[type[Any], set[str]]
) -> None:
    """Record, for ``cls`` and the dataclasses nested in it, the fields ``node`` (its
    schema) does not require."""
    node = _deref(root, node)
    required = set(node.get("required", ()))
    properties = node.get("properties", {})
    hints = typing.get_type_hints(cls)
    optional = into.setdefault(cls, set())
    for f in dataclasses.fields(cls):
        name = camel(f.name)
        if name not in required:
            optional.add(f.name)
        prop = properties.get(name)
        nested = _dataclass_in(_REFINED.get((cls, f.name), hints.get(f.name)))
        if nested is None or prop is None:
            continue
        prop = _deref(root, prop)
        if prop.get("type") == "array" and "items" in prop:
            prop = _deref(root, prop["items"])
        _collect_optional(nested, root, prop, into)


@functools.cache
def _optional_fields(version: OcppVersion) -> dict[type[Any], frozenset[str]]:
    """Dataclass → the snake_case fields its JSON schema leaves optional (every action of
    ``version``, both directions, nested objects included). A datatype used in several
    messages is optional only where every schema leaves it so."""
    found: dict[type[Any], set[str]] = {}
    catalogue = CATALOGUES[version]
    for kind, table in (("call", catalogue.calls), ("result", catalogue.results)):
        for action, cls in table.items():
            schema = _schema_file(kind, action, version)
            per_message: dict[type[Any], set[str]] = {}
            _collect_optional(cls, schema, schema, per_message)
            for datacls, names in per_message.items():
                found[datacls] = found[datacls] & names if datacls in found else names
    return {datacls: frozenset(names) for datacls, names in found.items()}


def optional_fields(cls: type[Any]) -> frozenset[str]:
    """The fields of an ``ocpp.v16`` / ``ocpp.v201`` dataclass that its JSON schema does
    not require."""
    version = _version_of_module(getattr(cls, "__module__", ""))
    if version is None:
        return frozenset()
    return _optional_fields(version).get(cls, frozenset())


def _version_of_module(module: str) -> OcppVersion | None:
    if module.startswith("ocpp.v16"):
        return OcppVersion.V16
    if module.startswith("ocpp.v201"):
        return OcppVersion.V201
    return None


_IRREGULAR = {"bulk_soc": "bulkSoC", "full_soc": "fullSoC", "responder_url": "responderURL"}
"""The 2.0.1 schemas' names that are not the camelCase of the dataclass field."""


def camel(name: str) -> str:
    """``charge_point_vendor`` → ``chargePointVendor`` (and the few names the schemas
    spell otherwise: ``responder_url`` → ``responderURL``)."""
    irregular = _IRREGULAR.get(name)
    if irregular is not None:
        return irregular
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _is_ocpp_dataclass(cls: Any) -> bool:
    return (
        dataclasses.is_dataclass(cls)
        and _version_of_module(getattr(cls, "__module__", "")) is not None
    )


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(omit_if_default=False, forbid_extra_keys=True)

    def unstructure_factory(cls: type[Any]) -> Any:
        overrides: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            refined = _REFINED.get((cls, f.name))
            hook = None
            if refined is not None:
                hook = functools.partial(_unstructure_as, conv, refined)
            overrides[f.name] = override(
                rename=camel(f.name), omit_if_default=f.default is None, unstruct_hook=hook
            )
        generated = make_dict_unstructure_fn(cls, conv, **overrides)
        optional = [camel(name) for name in optional_fields(cls)]

        def unstructure(value: Any) -> dict[str, Any]:
            data: dict[str, Any] = generated(value)
            for name in optional:
                if name in data and data[name] is None:
                    del data[name]
            return data

        return unstructure

    def structure_factory(cls: type[Any]) -> Any:
        overrides: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            refined = _REFINED.get((cls, f.name))
            hook = None
            if refined is not None:
                hook = functools.partial(_structure_as, conv, refined)
            optional = f.name in optional_fields(cls)
            if hook is None and optional and f.default is dataclasses.MISSING:
                hook = functools.partial(_structure_as, conv, typing.get_type_hints(cls)[f.name])
            overrides[f.name] = override(rename=camel(f.name), struct_hook=hook)
        generated: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **overrides
        )
        if _version_of_module(cls.__module__) is OcppVersion.V201 and not any(
            f.name == "custom_data" for f in dataclasses.fields(cls)
        ):  # 2.0.1 allows customData in every object; ocpp.v201's nested types have no
            # field for it: a vendor's extension there is accepted and not kept
            strict = generated

            def lenient(data: Any, kind: Any) -> Any:
                if isinstance(data, dict) and "customData" in data:
                    data = {k: v for k, v in data.items() if k != "customData"}
                return strict(data, kind)

            generated = lenient

        absent_means_none = [
            camel(f.name)
            for f in dataclasses.fields(cls)
            if f.name in optional_fields(cls)
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if not absent_means_none:
            return generated

        def structure(data: Any, kind: Any) -> Any:
            if isinstance(data, dict) and any(k not in data for k in absent_means_none):
                data = {**dict.fromkeys(absent_means_none), **data}
            return generated(data, kind)

        return structure

    # Enums go out as their plain string values (StrEnum would otherwise pass as str).
    conv.register_unstructure_hook(
        enum.StrEnum, lambda v: str(v.value) if isinstance(v, enum.Enum) else v
    )
    conv.register_unstructure_hook_factory(_is_ocpp_dataclass, unstructure_factory)
    conv.register_structure_hook_factory(_is_ocpp_dataclass, structure_factory)
    conv.register_structure_hook_factory(_is_text_union, _structure_text_union)
    return conv


def _is_text_union(kind: Any) -> bool:
    """A field typed ``Union[SomeEnum, str, None]`` (2.0.1's ``unitOfMeasure.unit``: a
    standardized unit or any other text)."""
    if typing.get_origin(kind) is not typing.Union:
        return False
    members = [a for a in typing.get_args(kind) if a is not type(None)]
    return str in members and all(
        a is str or (isinstance(a, type) and issubclass(a, enum.Enum)) for a in members
    )


def _structure_text_union(kind: Any) -> Any:
    enums = [a for a in typing.get_args(kind) if isinstance(a, type) and issubclass(a, enum.Enum)]

    def structure(value: Any, _: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {type(value).__name__}")
        for members in enums:
            try:
                return members(value)  # a standardized value, as the enum member
            except ValueError:
                continue
        return value

    return structure


def _unstructure_as(conv: cattrs.Converter, kind: Any, value: Any) -> Any:
    return None if value is None else conv.unstructure(value, unstructure_as=kind)


def _structure_as(conv: cattrs.Converter, kind: Any, value: Any, _: Any) -> Any:
    return None if value is None else conv.structure(value, kind)


converter = _make_converter()
"""The converter between ``ocpp.v16`` / ``ocpp.v201`` dataclasses and OCPP-J JSON
payloads."""


def _index(module: Any) -> dict[str, type[Any]]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == module.__name__
    }


CALLS: dict[str, type[Any]] = _index(call)
"""Action name → ``ocpp.v16.call`` dataclass."""
RESULTS: dict[str, type[Any]] = _index(call_result)
"""Action name → ``ocpp.v16.call_result`` dataclass."""


@dataclasses.dataclass(frozen=True, slots=True)
class Catalogue:
    """The messages of one OCPP version: action name → its ``call`` and ``call_result``
    dataclasses."""

    version: OcppVersion
    calls: dict[str, type[Any]]
    results: dict[str, type[Any]]


CATALOGUES: dict[OcppVersion, Catalogue] = {
    OcppVersion.V16: Catalogue(OcppVersion.V16, CALLS, RESULTS),
    OcppVersion.V201: Catalogue(OcppVersion.V201, _index(call201), _index(call_result201)),
}
"""Every version's :class:`Catalogue`."""


def version_of(payload: Any) -> OcppVersion:
    """The OCPP version a ``call`` or ``call_result`` dataclass instance belongs to."""
    cls = type(payload)
    for catalogue in CATALOGUES.values():
        name = cls.__name__
        if catalogue.calls.get(name) is cls or catalogue.results.get(name) is cls:
            return catalogue.version
    raise TypeError(f"{cls.__qualname__} is not an ocpp call or call_result dataclass")


def action_of(payload: Any) -> str:
    """The OCPP action a ``call`` or ``call_result`` dataclass instance (``ocpp.v16`` or
    ``ocpp.v201``) belongs to."""
    version_of(payload)
    return type(payload).__name__


def to_json_payload(payload: Any) -> dict[str, Any]:
    """Unstructure an ``ocpp.v16`` / ``ocpp.v201`` dataclass to its camelCase JSON object."""
    data: dict[str, Any] = converter.unstructure(payload)
    return data


def from_json_payload(cls: type[Any], data: dict[str, Any]) -> Any:
    """Structure a (validated) camelCase JSON object into ``cls``.

    Raises :class:`OcppError` (``FormationViolation``) if it does not fit, which can only
    happen when validation was relaxed or switched off.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise OcppError(
            ErrorCode.FORMATION_VIOLATION, f"{cls.__name__}: payload does not fit the message"
        ) from exc
