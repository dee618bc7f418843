"""The shortcuts taken for speed and memory give the same answers as the long way."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from libv4e import Charger, ChargerConfig, handlers_from
from libv4e.charger._model import Configuration, default_configuration
from libv4e.csms._registry import iso
from libv4e.transport._handlers import BoundHandlers


@given(st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))])))
def test_iso_fast_path_matches_the_conversion(value):
    expected = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    assert iso(value) == expected.replace("+00:00", "Z")


def test_bound_handlers_offer_what_handlers_from_collects():
    charger = Charger(ChargerConfig(cp_id="H1"))
    table, view = handlers_from(charger.handlers), BoundHandlers(charger.handlers)
    assert set(view) == set(table) and len(view) == len(table) > 15
    for action, handler in table.items():
        assert view[action] == handler
    assert view.get("BootNotification") is None  # a charger does not answer it


def test_shared_configuration_is_copied_on_change_only_for_that_charger():
    a = Charger(ChargerConfig(cp_id="CFG1"))
    b = Charger(ChargerConfig(cp_id="CFG2"))
    assert a.configuration.change("MeterValueSampleInterval", "5") == "Accepted"
    a.configuration.keys["HeartbeatInterval"].value = "7"  # as a boot answer does
    assert a.configuration.int("MeterValueSampleInterval") == 5
    assert a.configuration.int("HeartbeatInterval") == 7
    assert b.configuration.int("MeterValueSampleInterval") == 10
    assert b.configuration.int("HeartbeatInterval") == 30
    fresh = Configuration(default_configuration(1, 30))
    for config in (a.configuration, b.configuration):
        known, unknown = config.get(None)
        assert [k.key for k in known] == list(fresh.keys) and not unknown
        assert config.change("NumberOfConnectors", "3") == "Rejected"  # read-only stays so
        assert config.change("NoSuchKey", "1") == "NotSupported"
    assert b.configuration.get(["HeartbeatInterval"])[0][0].value == "30"
    assert a.configuration.get(["HeartbeatInterval", "X"])[1] == ["X"]
