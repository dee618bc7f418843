"""A full disk produced thousands of tracebacks in seconds. Store
failures are logged once per interval with a count of the ones left out, the traceback
only the first time; the CSMS keeps answering (InternalError, so chargers retry)."""

from __future__ import annotations

import json
import logging

from trio_websocket import open_websocket_url

from libv4e import StoreError
from libv4e.csms import SqliteStore
from libv4e.transport._quietlog import QuietLog
from tests.support import ws_url


def test_quiet_log_counts_what_it_leaves_out(caplog):
    logger = logging.getLogger("test.quiet")
    quiet = QuietLog(logger, interval=3600)
    with caplog.at_level(logging.ERROR, logger="test.quiet"):
        for i in range(5000):
            try:
                raise StoreError("disk full")
            except StoreError:
                quiet.error("write %d failed", i, exc_info=True)
        quiet._next = 0  # the interval passed
        quiet.error("write failed again")
    records = [r for r in caplog.records if r.name == "test.quiet"]
    assert len(records) == 2
    assert records[0].exc_info and not records[1].exc_info
    assert "4999 more store failures" in records[1].getMessage()


class FullDisk(SqliteStore):
    """A database whose disk is full: every write fails (reads work)."""

    full = False

    async def log_messages(self, records):
        if self.full:
            raise StoreError("database or disk is full")
        return await super().log_messages(records)

    async def save_chargers(self, states):
        if self.full:
            raise StoreError("database or disk is full")
        return await super().save_chargers(states)

    async def write_transactions(self, *args, **kwargs):
        if self.full:
            raise StoreError("database or disk is full")
        return await super().write_transactions(*args, **kwargs)


async def test_a_full_disk_is_logged_once_per_interval(tmp_path, caplog):
    import trio

    from libv4e_apps.csms.backend import BackendConfig, serve_backend

    store = FullDisk(str(tmp_path / "v4e.db"))
    config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:")
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, store=store, task_status=task_status)
        )
        url = ws_url(backend)
        async with open_websocket_url(f"{url}/DISK1", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
            assert json.loads(await ws.get_message())[0] == 3
            store.full = True
            with caplog.at_level(logging.ERROR):
                for i in range(200):
                    start = {
                        "connectorId": 1,
                        "idTag": "T",
                        "meterStart": i,
                        "timestamp": "2026-12-04T12:00:00Z",
                    }
                    await ws.send_message(json.dumps([2, f"s{i}", "StartTransaction", start]))
                    answer = json.loads(await ws.get_message())
                    assert answer[0] == 4 and answer[2] == "InternalError"
                    await backend.csms.flush_log()
        nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 6, [r.getMessage() for r in errors]
    assert sum(bool(r.exc_info) for r in errors) <= 2
