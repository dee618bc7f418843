"""Every ocpp.v16 and ocpp.v201 dataclass ⇄ JSON through the one cattrs converter, checked
by the schemas."""

from __future__ import annotations

import dataclasses

import pytest
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e.protocol import OcppVersion, from_json_payload, to_json_payload
from libv4e.protocol._convert import CALLS, CATALOGUES, RESULTS, camel
from libv4e.protocol._validation import schema_for, validate
from tests.conftest import sample_from_schema, sample_payload

CASES = [("call", a, c) for a, c in sorted(CALLS.items())] + [
    ("result", a, c) for a, c in sorted(RESULTS.items())
]


@pytest.mark.parametrize(("kind", "action", "cls"), CASES, ids=[f"{k}-{a}" for k, a, _ in CASES])
def test_every_dataclass_round_trips_through_its_schema(kind, action, cls):
    full = sample_payload(kind, action)
    validate(kind, action, full)
    typed = from_json_payload(cls, full)
    assert isinstance(typed, cls)
    assert to_json_payload(typed) == full
    validate(kind, action, to_json_payload(typed))


@pytest.mark.parametrize(("kind", "action", "cls"), CASES, ids=[f"{k}-{a}" for k, a, _ in CASES])
def test_optional_means_optional_every_action_both_directions(kind, action, cls):
    """Conversion follows the schema's ``required`` lists (nested objects included), not
    the dataclass signatures: a payload with only the required properties converts and
    comes back unchanged (SecurityEventNotification without techInfo was refused)."""
    minimal = sample_payload(kind, action, minimal=True)
    validate(kind, action, minimal)
    typed = from_json_payload(cls, minimal)
    assert isinstance(typed, cls)
    out = to_json_payload(typed)
    validate(kind, action, out)
    # an optional list the dataclass defaults to [] may go out empty (same meaning)
    assert {k: v for k, v in out.items() if not (v == [] and k not in minimal)} == minimal


def test_required_fields_stay_required():
    from libv4e._errors import OcppError

    with pytest.raises(OcppError):
        from_json_payload(call.SecurityEventNotification, {"type": "FirmwareUpdated"})


@pytest.mark.parametrize(("kind", "action", "cls"), CASES, ids=[f"{k}-{a}" for k, a, _ in CASES])
def test_dataclass_fields_are_the_schema_properties(kind, action, cls):
    schema = schema_for(kind, action)
    fields = {camel(f.name) for f in dataclasses.fields(cls)}
    assert fields == set(schema.get("properties", {}))


def test_nested_meter_values_become_dataclasses():
    payload = {
        "connectorId": 1,
        "transactionId": 5,
        "meterValue": [
            {
                "timestamp": "2024-05-01T12:00:00Z",
                "sampledValue": [
                    {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}
                ],
            }
        ],
    }
    typed = from_json_payload(call.MeterValues, payload)
    sample = typed.meter_value[0].sampled_value[0]
    assert isinstance(sample, datatypes.SampledValue)
    assert sample.measurand is enums.Measurand.power_active_import
    assert to_json_payload(typed) == payload


def test_none_fields_are_omitted_and_enums_are_plain_strings():
    out = to_json_payload(call_result.BootNotification("2024-01-01T00:00:00Z", 30, "Accepted"))
    assert out == {"currentTime": "2024-01-01T00:00:00Z", "interval": 30, "status": "Accepted"}
    out = to_json_payload(
        call.StatusNotification(
            1, enums.ChargePointErrorCode.no_error, enums.ChargePointStatus.available
        )
    )
    assert out == {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert type(out["status"]) is str


V201 = CATALOGUES[OcppVersion.V201]
CASES_201 = [("call", a, c) for a, c in sorted(V201.calls.items())] + [
    ("result", a, c) for a, c in sorted(V201.results.items())
]


@pytest.mark.parametrize(
    ("kind", "action", "cls"), CASES_201, ids=[f"{k}-{a}" for k, a, _ in CASES_201]
)
@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
def test_every_2_0_1_dataclass_round_trips_through_its_schema(kind, action, cls, minimal):
    """Every 2.0.1 message, with every property and with the required ones only: its
    names (``responderURL``, ``bulkSoC``… are not plain camelCase) and its nesting."""
    v201 = OcppVersion.V201
    payload = sample_from_schema(schema_for(kind, action, v201), minimal=minimal)
    validate(kind, action, payload, v201)
    typed = from_json_payload(cls, payload)
    assert isinstance(typed, cls)
    out = to_json_payload(typed)
    validate(kind, action, out, v201)
    # customData inside nested objects is accepted but not kept (ocpp.v201's nested
    # types have no field for it); everything else comes back as it came
    want = {k: _nested_custom_data_out(v) for k, v in payload.items()}
    assert {k: v for k, v in out.items() if not (v == [] and k not in payload)} == want


def _nested_custom_data_out(value):
    if isinstance(value, list):
        return [_nested_custom_data_out(v) for v in value]
    if isinstance(value, dict):
        return {k: _nested_custom_data_out(v) for k, v in value.items() if k != "customData"}
    return value


@pytest.mark.parametrize(
    ("kind", "action", "cls"), CASES_201, ids=[f"{k}-{a}" for k, a, _ in CASES_201]
)
def test_2_0_1_dataclass_fields_are_the_schema_properties(kind, action, cls):
    schema = schema_for(kind, action, OcppVersion.V201)
    fields = {camel(f.name) for f in dataclasses.fields(cls)}
    assert fields == set(schema.get("properties", {}))
