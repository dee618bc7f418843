"""Date-times a peer sends must exist in UTC. ``9999-12-31T23:00:00-05:00`` is valid RFC
3339 (a charger with an unset clock and a time-zone offset can send it) but is year 10000
in UTC: stored, it made every later rendering raise OverflowError (``GET /status`` 500 for
the whole fleet) and a log flush drop the state of every charger in the same batch."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action
from trio_websocket import open_websocket_url

from libv4e import ErrorCode, OcppError
from libv4e.protocol import _bounds
from libv4e.protocol._time import iso, parse_time
from tests.conftest import sample_payload
from tests.support import api, running_backend, ws_url


def _time_paths(tree, prefix=()):
    for name, sub in tree.items():
        if sub == "date-time":
            yield (*prefix, name)
        elif isinstance(sub, dict):
            yield from _time_paths(sub, (*prefix, name))


def _actions_with_times():
    found = []
    for action in sorted(a.value for a in Action):
        for kind in ("call", "result"):
            try:
                tree = _bounds._tree(kind, action)
            except (KeyError, ValueError):
                continue
            paths = list(_time_paths(tree))
            if paths:
                found.append((kind, action, paths))
    return found


ACTIONS_WITH_TIMES = _actions_with_times()


def _set(data, path, value):
    """Set every occurrence of ``path`` in ``data`` (lists: each item)."""
    if isinstance(data, list):
        for item in data:
            _set(item, path, value)
        return
    if not isinstance(data, dict) or path[0] not in data:
        return
    if len(path) == 1:
        data[path[0]] = value
    else:
        _set(data[path[0]], path[1:], value)


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
extremes = st.sampled_from(
    [dt.datetime.min, dt.datetime.max, dt.datetime(1, 1, 1, 0, 30), dt.datetime(9999, 12, 31, 23)]
)
naive = st.one_of(extremes, st.datetimes())
OCPP_TIMES = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), naive, offsets),
    st.builds(lambda d: d.isoformat() + "Z", naive),
    st.builds(lambda d: d.isoformat(), naive),
)


def test_every_action_that_carries_a_time_is_covered():
    names = {action for _, action, _ in ACTIONS_WITH_TIMES}
    assert {"StatusNotification", "MeterValues", "StartTransaction", "StopTransaction"} <= names
    assert len(ACTIONS_WITH_TIMES) >= 10


@pytest.mark.parametrize(
    ("kind", "action", "paths"),
    ACTIONS_WITH_TIMES,
    ids=[f"{k}-{a}" for k, a, _ in ACTIONS_WITH_TIMES],
)
@settings(max_examples=60, deadline=None)
@given(value=OCPP_TIMES)
def test_a_time_is_refused_or_renders(kind, action, paths, value):
    payload = sample_payload(kind, action)
    for path in paths:
        _set(payload, path, value)
    refused = None
    try:
        _bounds.check(kind, action, payload)
    except OcppError as exc:
        refused = exc.code
    if refused is not None:
        assert refused == ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
        return
    parsed = parse_time(value)
    if parsed is not None:  # accepted: every reader can render it, and back
        assert parse_time(iso(parsed)) == parsed.replace(
            microsecond=parsed.microsecond // 1000 * 1000
        )


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_one_charger_with_an_impossible_time_costs_only_itself(tmp_path, transport):
    async with running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend:
        url = ws_url(backend)

        async def charger(name, timestamp):
            async with open_websocket_url(f"{url}/{name}", subprotocols=["ocpp1.6"]) as ws:
                boot = {"chargePointVendor": "V", "chargePointModel": "M"}
                await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
                assert json.loads(await ws.get_message())[0] == 3
                note = {
                    "connectorId": 1,
                    "errorCode": "GroundFailure",
                    "status": "Faulted",
                    "timestamp": timestamp,
                }
                await ws.send_message(json.dumps([2, "s", "StatusNotification", note]))
                return json.loads(await ws.get_message())

        hostile = await charger("HOSTILE", "9999-12-31T23:00:00-05:00")
        assert hostile[0] == 4 and hostile[2] == "PropertyConstraintViolation"
        early = await charger("EARLY", "0001-01-01T00:00:00+01:00")
        assert early[2] == "PropertyConstraintViolation"
        for i in range(5):
            assert await charger(f"HONEST{i}", "2024-05-01T12:00:00+02:00") == [3, "s", {}]
        await backend.csms.flush_log()
        async with api(backend) as client:
            status = await client.get("/status")
            chargers = await client.get("/chargers")
            assert status.status_code == chargers.status_code == 200
            for i in range(5):
                one = (await client.get(f"/chargers/HONEST{i}")).json()
                (connector,) = [c for c in one["connectors"] if int(c["connector_id"]) == 1]
                assert connector["status"] == "Faulted"
