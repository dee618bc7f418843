"""A body over the REST API's limit gets its 413 JSON answer even from a client that
keeps sending it on a keep-alive connection (closing with unread bytes makes the kernel
reset the connection, and the client saw "connection reset" instead of the answer), and
the connection serves the next request."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import trio
import trio.testing

from libv4e_apps.csms.api import MAX_BODY_BYTES
from libv4e_apps.csms.asgi_body import DRAIN_BYTES
from libv4e_apps.csms.backend import BackendConfig, serve_backend

BIG = 5 * 1024 * 1024


def _post(body: bytes, chunked: bool) -> bytes:
    """A keep-alive POST /id_tags of ``body``, with a Content-Length or chunked."""
    head = (
        "POST /id_tags HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
        "Content-Type: application/json\r\n"
    )
    if not chunked:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    parts = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    data = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + data


def _exchange(port: int, rounds: int, chunked: bool) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        reader = s.makefile("rb")
        for _ in range(rounds):
            body = b'{"id_tag": "' + b"x" * BIG + b'"}'
            try:
                s.sendall(_post(body, chunked))
            except OSError as exc:
                out.append(("send failed", repr(exc)))
                return out
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            answer = json.loads(reader.read(int(headers["content-length"])))
            out.append((status.decode().strip(), answer["error"]))
        s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        out.append(("next", reader.readline().decode().strip()))
    return out


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_too_large_body_is_answered_413_and_the_connection_goes_on(chunked):
    config = BackendConfig(
        host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:", tune_gc=False
    )
    seen: list = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            results: list = []

            def clients() -> None:
                threads = [
                    threading.Thread(
                        target=lambda: results.append(_exchange(backend.api_port, 3, chunked))
                    )
                    for _ in range(4)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            await trio.to_thread.run_sync(clients)
            seen.extend(results)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(seen) == 4
    for exchange in seen:
        assert exchange == [("HTTP/1.1 413", "body_too_large")] * 3 + [("next", "HTTP/1.1 200")]


def test_past_the_drain_bound_the_413_closes_the_connection():
    """A body bigger than the limit plus what is drained gets its 413 with ``Connection:
    close``, and the connection is closed then (it was held open with no bound: the close
    ran in the app's task, which Quart-Trio cancels once the answer is out). On trio's
    clock: a connection left open would run into the test's 600 s cap at once."""
    body = b'{"id_tag": "' + b"x" * (MAX_BODY_BYTES + DRAIN_BYTES + 1024 * 1024) + b'"}'
    seen: list = []

    async def main() -> None:
        config = BackendConfig(
            host="127.0.0.1", ws_port=0, api_port=0, db_path=":memory:", tune_gc=False
        )
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )

            async def send(stream: trio.SocketStream) -> None:
                try:
                    await stream.send_all(_post(body, chunked=False))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # past the bound, the unread rest may be refused

            for _ in range(3):  # the hold depended on a race: 7 times in 8
                stream = await trio.open_tcp_stream("127.0.0.1", backend.api_port)
                started = trio.current_time()

                async with stream, trio.open_nursery() as client:
                    client.start_soon(send, stream)
                    got = b""
                    with trio.move_on_after(600):
                        try:
                            while chunk := await stream.receive_some(65536):
                                got += chunk
                        except trio.BrokenResourceError:
                            pass
                    seen.append(
                        (
                            got.split(b"\r\n")[0],
                            b"connection: close" in got.lower(),
                            trio.current_time() - started,
                        )
                    )
                    client.cancel_scope.cancel()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(seen) == 3
    for answer, close, held in seen:
        assert answer == b"HTTP/1.1 413 " and close, seen
        assert held < 30, seen  # the body's own deadline; it was held to the 600 s cap
