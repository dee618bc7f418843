"""Typed payloads: ``ocpp.v16`` dataclasses (snake_case) ⇄ OCPP-J JSON (camelCase).

One cattrs converter. A few ``ocpp.v16`` fields are annotated as bare ``List``/``Dict``;
they are refined here to the datatype the schema describes, so handlers receive
``MeterValue``/``SampledValue`` objects rather than raw camelCase dicts.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from ocpp.v16 import call, call_result, datatypes

from libv4e._errors import ErrorCode, OcppError

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
}


def camel(name: str) -> str:
    """``charge_point_vendor`` → ``chargePointVendor``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _is_ocpp_dataclass(cls: Any) -> bool:
    return dataclasses.is_dataclass(cls) and getattr(cls, "__module__", "").startswith("ocpp.v16")


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
        return make_dict_unstructure_fn(cls, conv, **overrides)

    def structure_factory(cls: type[Any]) -> Any:
        overrides: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            refined = _REFINED.get((cls, f.name))
            hook = None
            if refined is not None:
                hook = functools.partial(_structure_as, conv, refined)
            overrides[f.name] = override(rename=camel(f.name), struct_hook=hook)
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **overrides)

    # Enums go out as their plain string values (StrEnum would otherwise pass as str).
    conv.register_unstructure_hook(
        enum.StrEnum, lambda v: str(v.value) if isinstance(v, enum.Enum) else v
    )
    conv.register_unstructure_hook_factory(_is_ocpp_dataclass, unstructure_factory)
    conv.register_structure_hook_factory(_is_ocpp_dataclass, structure_factory)
    return conv


def _unstructure_as(conv: cattrs.Converter, kind: Any, value: Any) -> Any:
    return None if value is None else conv.unstructure(value, unstructure_as=kind)


def _structure_as(conv: cattrs.Converter, kind: Any, value: Any, _: Any) -> Any:
    return None if value is None else conv.structure(value, kind)


converter = _make_converter()
"""The converter between ``ocpp.v16`` dataclasses and OCPP-J JSON payloads."""


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


def action_of(payload: Any) -> str:
    """The OCPP action a ``ocpp.v16.call`` or ``call_result`` dataclass instance belongs to."""
    cls = type(payload)
    if CALLS.get(cls.__name__) is cls or RESULTS.get(cls.__name__) is cls:
        return cls.__name__
    raise TypeError(f"{cls.__qualname__} is not an ocpp.v16 call or call_result dataclass")


def to_json_payload(payload: Any) -> dict[str, Any]:
    """Unstructure an ``ocpp.v16`` dataclass to its camelCase JSON object."""
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
