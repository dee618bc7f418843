"""Bad input, property-based: whatever arrives, the answer follows OCPP-J (a CALLERROR with
a 1.6 code, or nothing for what cannot be answered), nothing crashes, and another charger
connected at the same time notices nothing. The REST API answers 4xx JSON, never 500."""

from __future__ import annotations

import contextlib
import json

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call
from trio_websocket import ConnectionClosed, open_websocket_url

from libv4e import CallRejected, ErrorCode, FrameDropped, OcppSession, Role
from libv4e.protocol._convert import CALLS
from tests.support import api, plain_charger, running_backend, ws_url

CODES = {c.value for c in ErrorCode}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
actions = st.sampled_from(sorted(CALLS)) | st.text(max_size=30)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.tuples(st.integers(-3, 9), st.text(max_size=40), actions, json_values).map(
        lambda t: json.dumps(list(t))
    ),
    st.tuples(
        st.just(2),
        st.text(min_size=1, max_size=36),
        actions,
        st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    ).map(lambda t: json.dumps(list(t))),
    st.tuples(st.sampled_from([3, 4]), st.text(max_size=36), json_values).map(
        lambda t: json.dumps(list(t))
    ),
)


def _asks_to_close(frames) -> bool:
    """Whether a central-system session fed ``frames`` asks to close (repeated garbage)."""
    session = OcppSession(Role.CENTRAL_SYSTEM)
    return any(isinstance(e, FrameDropped) and e.close for e in map(session.receive, frames))


def check_answer(event) -> None:
    if isinstance(event, CallRejected):
        frame = json.loads(event.reply.text)
        assert frame[0] == 4
        assert frame[1] == event.unique_id
        assert frame[2] in CODES
        assert isinstance(frame[3], str)
        assert isinstance(frame[4], dict)


@given(st.one_of(frames, st.binary(max_size=64)))
@settings(max_examples=600, deadline=None)
def test_session_survives_anything_and_answers_with_1_6_codes(data):
    for role in Role:
        session = OcppSession(role)
        event = session.receive(data)
        check_answer(event)
        if isinstance(event, FrameDropped):
            assert not event.close


@given(st.lists(frames, min_size=1, max_size=30))
@settings(max_examples=100, deadline=None)
def test_a_session_keeps_working_after_garbage(garbage):
    session = OcppSession(Role.CENTRAL_SYSTEM)
    for frame in garbage:
        check_answer(session.receive(frame))
    event = session.receive('[2,"final-check-1","Heartbeat",{}]')
    assert type(event).__name__ in (
        "CallReceived",
        "CallRejected",
    )  # rejected only if the id repeats


@contextlib.asynccontextmanager
async def live_backend(tmp_path):
    """A backend with a well-behaved charger GOOD1 (per example: pytest-trio runs each
    Hypothesis example in its own Trio run)."""
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        plain_charger(backend, "GOOD1") as (good, _),
    ):
        yield backend, good


@pytest.mark.usefixtures("both_transports")
@given(st.lists(st.one_of(frames, st.binary(max_size=64)), min_size=1, max_size=8))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_csms_answers_garbage_per_ocpp_j_and_others_carry_on(tmp_path, sent):
    async with (
        live_backend(tmp_path) as (backend, good),
        open_websocket_url(ws_url(backend) + "/FUZZ1", subprotocols=["ocpp1.6"]) as ws,
    ):
        try:
            for frame in sent:
                await ws.send_message(frame)
            await ws.send_message('[2,"probe-after-garbage","Heartbeat",{}]')
            with trio.fail_after(10):
                while True:
                    answer = json.loads(await ws.get_message())
                    assert answer[0] in (3, 4)
                    if answer[0] == 4:
                        assert answer[2] in CODES
                    if answer[1] == "probe-after-garbage":
                        break
        except ConnectionClosed:
            # the only close allowed: five unreadable frames in a row (OCPP-J cannot answer)
            assert ws.closed.code == 1002
            assert _asks_to_close(sent)
        with trio.fail_after(5):
            assert (await good.call(call.Heartbeat(), timeout=5)).current_time


@pytest.mark.usefixtures("both_transports")
async def test_oversized_frame_is_closed_with_1009_and_others_carry_on(tmp_path):
    async with (
        live_backend(tmp_path) as (backend, good),
        open_websocket_url(ws_url(backend) + "/BIG1", subprotocols=["ocpp1.6"]) as ws,
    ):
        await ws.send_message(
            json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 100_000}])
        )
        with trio.fail_after(5), pytest.raises(Exception):  # noqa: B017 - ConnectionClosed
            await ws.get_message()
        assert ws.closed.code == 1009
        await good.call(call.Heartbeat(), timeout=5)


@pytest.mark.usefixtures("both_transports")
async def test_duplicate_ids_and_unsolicited_results(tmp_path):
    async with (
        live_backend(tmp_path) as (backend, good),
        open_websocket_url(ws_url(backend) + "/DUP1", subprotocols=["ocpp1.6"]) as ws,
    ):
        await ws.send_message('[3,"nobody-asked",{}]')
        await ws.send_message('[4,"nobody-asked","InternalError","x",{}]')
        await ws.send_message('[2,"same","Heartbeat",{}]')
        first = json.loads(await ws.get_message())
        await ws.send_message('[2,"same","Heartbeat",{}]')  # answered already: may be reused
        second = json.loads(await ws.get_message())
        assert first[:2] == [3, "same"]
        assert second[1] == "same"
        await good.call(call.Heartbeat(), timeout=5)


body_values = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "connector_id",
                "key",
                "value",
                "id_tag",
                "transaction_id",
                "status",
                "cp_id",
                "keys",
                "requested_message",
                "vendor_id",
                "reservation_id",
                "expiry_date",
                "duration",
                "location",
            ]
        ),
        json_values,
        max_size=4,
    ),
)
routes = st.sampled_from(
    [
        "/commands/reset/GOOD1",
        "/commands/change_availability/GOOD1",
        "/commands/change_configuration/GOOD1",
        "/commands/remote_start/GOOD1",
        "/commands/remote_stop/GOOD1",
        "/commands/unlock_connector/GOOD1",
        "/commands/send_local_list/GOOD1",
        "/commands/trigger_message/GOOD1",
        "/commands/reserve_now/GOOD1",
        "/commands/get_configuration/GOOD1",
        "/id_tags",
        "/tickets",
        "/demo/trigger/slow_charging",
        "/commands/nope/GOOD1",
        "/commands/reset/NOBODY",
    ]
)


@given(routes, st.one_of(body_values.map(json.dumps), st.text(max_size=50), st.binary(max_size=30)))
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_rest_api_never_answers_500(tmp_path, route, body):
    async with live_backend(tmp_path) as (backend, _), api(backend) as client:
        r = await client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500 or r.status_code in (502, 504), r.text
    data = r.json()
    if r.status_code >= 400:
        assert data["error"]
        assert data["message"]


async def test_a_number_is_not_a_date_and_ranges_are_ordered(tmp_path):
    """an integer was accepted as expiry_date (→ 1970), and
    cross-field rules were absent. Numbers are refused where a date-time belongs, and a
    range that ends before it starts is a 422."""
    from tests.support import api, running_backend

    async with running_backend(str(tmp_path / "v4e.db")) as backend, api(backend) as client:
        for path, body in (
            ("/id_tags", {"id_tag": "T1", "expiry_date": 5}),
            ("/id_tags", {"id_tag": "T1", "expiry_date": 1.5e9}),
            (
                "/commands/reserve_now/EVSE001",
                {"connector_id": 1, "expiry_date": 0, "id_tag": "T1"},
            ),
            (
                "/commands/get_diagnostics/EVSE001",
                {
                    "location": "ftp://x/y",
                    "start_time": "2026-12-04T12:00:00Z",
                    "stop_time": "2026-12-04T11:00:00Z",
                },
            ),
        ):
            r = await client.post(path, json=body)
            assert r.status_code == 422, (path, body, r.text)
        r = await client.post(
            "/id_tags", json={"id_tag": "T1", "expiry_date": "2099-01-01T00:00:00Z"}
        )
        assert r.status_code == 201, r.text
