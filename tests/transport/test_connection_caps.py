"""File descriptors: connections per remote address and those not booted are
bounded (2,035 never-booted sessions from one client starved real chargers and the REST
API), a connection without an accepted boot is closed after ``boot_deadline``, the
open-files soft limit is raised to the hard one at start, and failed accepts (EMFILE)
are logged once per interval. Real servers, raw sockets from two loopback addresses."""

from __future__ import annotations

import json
import logging
import resource

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from libv4e_apps.runtime import OncePerInterval, raise_fd_limit
from tests.support import api, handshake, running_backend, wait_for, ws_url


@pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])
async def test_junk_from_one_address_does_not_starve_another(tmp_path, transport):
    async with (
        running_backend(
            str(tmp_path / "v4e.db"), transport=transport, max_unbooted_per_address=5
        ) as backend,
        api(backend) as client,
    ):
        junk = []
        for i in range(5):
            status, sock = await handshake(backend.ws_port, f"JUNK{i}")
            assert status == 101
            junk.append(sock)
        status, extra = await handshake(backend.ws_port, "JUNK5")
        assert status == 503
        extra.close()
        # another address is not affected, and the API still answers
        status, honest = await handshake(backend.ws_port, "HONEST", source="127.0.0.2")
        assert status == 101
        honest.close()
        assert (await client.get("/status")).status_code == 200
        # when the junk goes, there is room again
        for sock in junk:
            sock.close()

        async def room():
            status, sock = await handshake(backend.ws_port, "LATER")
            sock.close()
            return status == 101

        await wait_for(room)


async def test_connections_per_address_are_capped(tmp_path):
    async with running_backend(str(tmp_path / "v4e.db"), max_connections_per_address=3) as backend:
        url = ws_url(backend)
        async with trio.open_nursery() as nursery:
            opened = []
            for i in range(3):
                ws = await _booted(nursery, url, f"SITE{i}")
                opened.append(ws)
            status, sock = await handshake(backend.ws_port, "SITE3")
            assert status == 503
            sock.close()
            status, sock = await handshake(backend.ws_port, "ELSEWHERE", source="127.0.0.3")
            assert status == 101
            sock.close()
            for ws in opened:
                await ws.aclose()
            nursery.cancel_scope.cancel()


async def _booted(nursery, url, cp_id):
    from trio_websocket import connect_websocket_url

    ws = await connect_websocket_url(nursery, f"{url}/{cp_id}", subprotocols=["ocpp1.6"])
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    await ws.send_message(json.dumps([2, "b", "BootNotification", boot]))
    assert json.loads(await ws.get_message())[0] == 3
    return ws


async def test_a_connection_that_never_boots_is_closed_at_the_deadline(tmp_path, autojump_clock):
    """The default deadline (300 s), on trio's clock: closed with 1008 then, not before;
    a booted charger is still served."""
    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        url = ws_url(backend)
        async with trio.open_nursery() as nursery:
            booted = await _booted(nursery, url, "GOOD")
            async with open_websocket_url(f"{url}/SILENT", subprotocols=["ocpp1.6"]) as ws:
                opened = trio.current_time()
                with trio.fail_after(1000), pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1008
                assert 300 <= trio.current_time() - opened < 301
            # the booted one is still served after the deadline
            await booted.send_message(json.dumps([2, "h", "Heartbeat", {}]))
            assert json.loads(await booted.get_message())[0] == 3
            await booted.aclose()
            nursery.cancel_scope.cancel()


def test_the_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        now_soft, now_hard = raise_fd_limit()
        assert now_hard == hard
        assert now_soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert now_soft == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_failed_accepts_are_logged_once_per_interval(caplog):
    logger = logging.getLogger("test.accepts")
    logger.addFilter(OncePerInterval(interval=3600))
    with caplog.at_level(logging.ERROR, logger="test.accepts"):
        for _ in range(1000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.error("accept returned EMFILE; retrying", exc_info=True)
    records = [r for r in caplog.records if r.name == "test.accepts"]
    assert len(records) == 1 and records[0].exc_info is None


async def test_the_count_per_address_returns_to_zero_after_hundreds_at_once(tmp_path):
    """The bookkeeping behind the caps under concurrency: 200 chargers connect at once
    (half of them boot, half are junk that never boots), then leave; no
    count is leaked, so no address is refused later for connections long gone."""
    from tests.support import booted_ws

    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        url = ws_url(backend)
        peak = []
        opened, all_open = [], trio.Event()

        async def together():  # each stays open until all 200 are
            opened.append(1)
            if len(opened) == 200:
                all_open.set()
            await all_open.wait()

        async def one(i):
            if i % 2:
                async with booted_ws(f"{url}/CC{i:03}"):
                    peak.append(backend.csms.peers.load("127.0.0.1", lambda _: True)[0])
                    await together()
            else:
                status, sock = await handshake(backend.ws_port, f"JUNK{i:03}")
                assert status == 101
                await together()
                sock.close()

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)

        async def drained():
            return backend.csms.peers.load("127.0.0.1", lambda _: False) == (0, 0)

        await wait_for(drained)
        assert max(peak) > 10  # they really were open at once
