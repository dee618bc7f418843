"""The REST port bounds how long a connection may go without a complete request: a
client trickling a request head (slowloris) is closed after ``http_idle_timeout``, while
other clients are served. Played on trio's clock (autojump): no wall time."""

from __future__ import annotations

import trio
import trio.testing

from libv4e_apps.csms.backend import BackendConfig, serve_backend


async def _until_closed(stream: trio.SocketStream, every: float | None) -> None:
    """Read (and drop) until the server closes ``stream``; meanwhile, with ``every``, send
    one more header line of a request head every ``every`` seconds (at most 600 s)."""
    closed = trio.Event()

    async def read() -> None:
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass  # closed with a reset: unread header bytes in the server's buffer
        closed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        with trio.move_on_after(600):
            i = 0
            while not closed.is_set():
                with trio.move_on_after(every or 600):
                    await closed.wait()
                if not closed.is_set() and every is not None:
                    i += 1
                    try:
                        await stream.send_all(f"X-Slow-{i}: 1\r\n".encode())
                    except trio.BrokenResourceError:
                        break
        nursery.cancel_scope.cancel()


async def _head_trickled(port: int, every: float) -> float:
    """Seconds until the server closes a connection sending one header line per
    ``every`` seconds."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    started = trio.current_time()
    async with stream:
        await stream.send_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await _until_closed(stream, every)
        return trio.current_time() - started


def _run(config: BackendConfig) -> dict:
    seen = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            port = backend.api_port

            async def honest() -> None:
                await trio.sleep(5)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    seen["honest"] = (await stream.receive_some(1024)).split(b"\r\n")[0]

            nursery.start_soon(honest)
            seen["held"] = await _head_trickled(port, every=4)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return seen


def _config(**kw) -> BackendConfig:
    return BackendConfig(
        host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:", tune_gc=False, **kw
    )


def test_a_trickled_request_head_is_cut_off_at_the_idle_timeout():
    seen = _run(_config())
    assert seen["honest"] == b"HTTP/1.1 200 "
    assert 19 <= seen["held"] <= 25  # default 20 s (it was 75 s: a slowloris held 75-80 s)


def test_the_idle_timeout_is_configurable():
    seen = _run(_config(http_idle_timeout=8))
    assert 7 <= seen["held"] <= 13


async def _after_one_request(port: int, trickle_every: float | None) -> tuple[bytes, float]:
    """One complete request on a keep-alive connection, then silence (``trickle_every``
    None) or the next request's head one line per ``trickle_every`` seconds: the status
    line of the answer, and the seconds from the answer until the server closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = await stream.receive_some(65536)
        answered = trio.current_time()
        if trickle_every is not None:
            await stream.send_all(b"GET /status HTTP/1.1\r\n")
        await _until_closed(stream, trickle_every)
        return first.split(b"\r\n")[0], trio.current_time() - answered


def test_the_idle_timeout_holds_after_a_first_request_too():
    """Quart-Trio cancels the app's task once the answer is out, and Hypercorn restarted
    its keep-alive timer in that task: after a first request, a connection was held with
    no bound at all (idle, or trickling its next request's head)."""
    seen: dict = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(
                    _config(http_idle_timeout=8), task_status=task_status
                )
            )
            seen["idle"] = await _after_one_request(backend.api_port, None)
            seen["trickled"] = await _after_one_request(backend.api_port, 3)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    for status, held in seen.values():
        assert status == b"HTTP/1.1 200 "
        assert 7 <= held <= 13, seen  # it was held 600 s (the test's cap): no bound


def test_the_idle_timeout_holds_on_http2_before_its_first_request():
    """HTTP/2 with prior knowledge: the preface reads as an HTTP/1.1 request, which stops
    Hypercorn's idle timer, and HTTP/2 restarted it only when a stream ended: a client
    sending the preface and then nothing, or its first HEADERS a byte at a time, was held
    with no bound."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    # a HEADERS frame (stream 1, END_STREAM|END_HEADERS) of literal fields, never completed
    block = b"\x00\x07:method\x03GET\x00\x05:path\x07/status"
    headers = len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block
    seen: dict = {}

    async def held(port: int, trickle: bool) -> float:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        started = trio.current_time()
        async with stream:
            await stream.send_all(preface)
            with trio.move_on_after(600):
                i = 0
                while True:
                    with trio.move_on_after(3 if trickle else 600):
                        try:
                            if not await stream.receive_some(65536):
                                break  # closed
                        except trio.BrokenResourceError:
                            break
                        continue  # the server's SETTINGS and its ack
                    if i < len(headers) - 1:
                        await stream.send_all(headers[i : i + 1])
                        i += 1
        return trio.current_time() - started

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(
                    _config(http_idle_timeout=8), task_status=task_status
                )
            )
            seen["silent"] = await held(backend.api_port, False)
            seen["trickled"] = await held(backend.api_port, True)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    for name, held_for in seen.items():
        assert 7 <= held_for <= 13, (name, seen)  # it was held 600 s (the test's cap)
