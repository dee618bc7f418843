"""A body over the REST API's limit gets its 413 JSON answer even from a client that
keeps sending it on a keep-alive connection (closing with unread bytes makes the kernel
reset the connection, and the client saw "connection reset" instead of the answer), and
the connection serves the next request."""

from __future__ import annotations

import json
import socket
import threading

import trio

from apps.csms.backend import BackendConfig, serve_backend

BIG = 5 * 1024 * 1024


def _exchange(port: int, rounds: int) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        reader = s.makefile("rb")
        for _ in range(rounds):
            body = b'{"id_tag": "' + b"x" * BIG + b'"}'
            head = (
                "POST /id_tags HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            try:
                s.sendall(head + body)
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


def test_a_too_large_body_is_answered_413_and_the_connection_goes_on():
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
                    threading.Thread(target=lambda: results.append(_exchange(backend.api_port, 3)))
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
