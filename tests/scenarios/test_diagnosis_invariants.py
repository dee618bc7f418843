"""Invariants of the diagnosis under random telemetry (Hypothesis): a plain OCPP charger
with two connectors sends random StatusNotifications and Authorize requests; after every
message the diagnosis must be neither stale nor falsely healthy, cite only logged
messages, and keep its driver lines voice-ready."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call

from libv4e import open_ocpp
from tests.support import api, boot, running_backend, ws_url

STATUS_FINDINGS = {"stuck_connector", "connector_fault", "connector_unavailable", "safety_fault"}
status_steps = st.tuples(
    st.just("status"),
    st.sampled_from([1, 2]),
    st.sampled_from(["NoError", "NoError", "ConnectorLockFailure", "HighTemperature"]),
    st.sampled_from(["Available", "Faulted", "Unavailable", "Preparing"]),
)
authorize_steps = st.tuples(st.just("authorize"), st.sampled_from(["GOOD1", "LOST1"]))
_counter = itertools.count()


@given(st.lists(st.one_of(status_steps, authorize_steps), min_size=1, max_size=8))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_no_stale_and_no_false_healthy_finding(tmp_path, steps):
    db = str(tmp_path / f"inv{next(_counter)}.db")
    async with running_backend(db, unknown_tags="reject") as backend, api(backend) as client:
        await client.post("/id_tags", json={"id_tag": "GOOD1", "status": "Accepted"})
        async with open_ocpp(ws_url(backend), "INV1") as conn:
            await boot(conn, connectors=2)
            last_status: dict[int, tuple[str, str]] = {1: ("NoError", "Available")}
            last_status[2] = ("NoError", "Available")
            refused_since_ok: dict[str, bool] = {}
            for step in steps:
                if step[0] == "status":
                    _, cid, error, status = step
                    await conn.call(call.StatusNotification(cid, error, status), timeout=5)
                    last_status[cid] = (error, status)
                else:
                    tag = step[1]
                    answer = await conn.call(call.Authorize(tag), timeout=5)
                    refused_since_ok[tag] = answer.id_tag_info.status != "Accepted"
                r = await client.get("/chargers/INV1/diagnosis", params={"evidence": "true"})
                d = r.json()
                assert (d["verdict"] == "fault_found") == bool(d["findings"])
                assert d["healthy"] == (d["verdict"] == "healthy")
                assert len(d["say"].split()) <= 20
                logged = {
                    m["unique_id"]
                    for m in (
                        await client.get("/chargers/INV1/messages", params={"limit": 1000})
                    ).json()["messages"]
                }
                for f in d["findings"]:
                    assert len(f["say"].split()) <= 20
                    assert {c["id"] for c in f["cites"]} <= logged
                for cid, (error, status) in last_status.items():
                    on_c = {f["code"] for f in d["findings"] if f["connector_id"] == cid}
                    faulty = error != "NoError" or status in ("Faulted", "Unavailable")
                    # not falsely healthy: an error code or a Faulted connector is a finding
                    assert faulty == bool(on_c & STATUS_FINDINGS), (cid, error, status, d)
                for tag, refused in refused_since_ok.items():
                    found = any(
                        f["code"] == "auth_failure" and tag in f["agent_note"]
                        for f in d["findings"]
                    )
                    # not stale: an accepted answer since the refusal ends the finding
                    assert found == refused, (tag, d)
