"""Every ocpp.v16 dataclass ⇄ JSON through the one cattrs converter, checked by the schemas."""

from __future__ import annotations

import dataclasses

import pytest
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e.protocol import from_json_payload, to_json_payload
from libv4e.protocol._convert import CALLS, RESULTS, camel
from libv4e.protocol._validation import schema_for, validate
from tests.conftest import sample_payload

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
