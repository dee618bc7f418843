"""Peer strings in the CSMS log are capped and escaped, and a flood of refused calls or
unreadable frames writes a few dozen lines, not one per frame."""

from __future__ import annotations

import json
import logging

import pytest
from trio_websocket import open_websocket_url

from libv4e.protocol import OcppSession, Role
from tests.support import running_backend, ws_url


def test_a_session_logs_a_flood_of_refusals_a_few_times_escaped(caplog):
    session = OcppSession(Role.CENTRAL_SYSTEM)
    caplog.set_level(logging.INFO, logger="libv4e")
    for i in range(10_000):
        session.receive(
            json.dumps([2, f"id\n{i}", "Forged\nINFO root: admin logged in" + "x" * 5000, {}])
        )
        session.receive("not json\nWARNING forged line")
    lines = [r.getMessage() for r in caplog.records]
    assert 10 <= len(lines) <= 2 * (5 + 14), "counted, not one line per frame"
    assert all("\n" not in line for line in lines), "a newline from a peer forged a line"
    assert all(len(line) < 800 for line in lines), "peer strings are capped"
    assert any(
        "10000 on this connection" in line or "8192 on this connection" in line for line in lines
    )


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_a_flooding_charger_writes_a_bounded_escaped_log(tmp_path, caplog, transport):
    caplog.set_level(logging.INFO)
    async with running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend:
        url = f"{ws_url(backend)}/NEVER-BOOTED"
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
            for i in range(600):
                await ws.send_message(json.dumps([2, f"u\n{i}", f"Made\nUp{i}", {}]))
                answer = json.loads(await ws.get_message())
                assert answer[0] == 4
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("libv4e")]
    assert len(lines) < 80, f"{len(lines)} log lines for 600 refused calls"
    assert all("\n" not in line for line in lines)
