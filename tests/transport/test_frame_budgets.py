"""Fragments and pings, on both transports (the lean wsproto one, the default,
and trio-websocket): a message in
tiny fragments (64 KiB in one-byte frames cost 82 % of a core at 1.7 messages/s) is
closed with 1008, and pings are paced (38,000 pongs/s came from four connections): past
a burst, a ping gets no pong. Raw frames over a raw socket."""

from __future__ import annotations

import json
import os
import struct

import pytest
import trio

from tests.support import handshake, running_backend


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frames(sock, until):
    """Server frames (opcode, payload) until ``until(frames)`` or the socket closes."""
    buffer, frames = b"", []
    with trio.fail_after(10):
        while not until(frames):
            chunk = await sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 2:
                n, at = buffer[1] & 0x7F, 2
                if n == 126:
                    n, at = struct.unpack("!H", buffer[2:4])[0], 4
                elif n == 127:
                    n, at = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < at + n:
                    break
                frames.append((buffer[0] & 0x0F, buffer[at : at + n]))
                buffer = buffer[at + n :]
    return frames


TRANSPORTS = pytest.mark.parametrize("transport", ["wsproto", "trio-websocket"])


async def still_served(port, cp_id):
    """A new charger connecting after the trouble gets its Heartbeat answered."""
    status, sock = await handshake(port, cp_id)
    assert status == 101
    await sock.send(frame(0x1, json.dumps([2, "h", "Heartbeat", {}]).encode()))
    frames = await read_frames(sock, lambda f: any(op == 0x1 for op, _ in f))
    (answer,) = [json.loads(p) for op, p in frames if op == 0x1]
    assert answer[0] == 3 and answer[1] == "h"
    sock.close()


@TRANSPORTS
async def test_a_message_in_tiny_fragments_is_closed_with_1008(tmp_path, transport):
    async with running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend:
        status, sock = await handshake(backend.ws_port, "FRAG1")
        assert status == 101
        text = json.dumps([2, "h", "Heartbeat", {}]).encode()
        fragments = [frame(0x1, text[:1], fin=False)]
        fragments += [frame(0x0, text[i : i + 1], fin=False) for i in range(1, len(text))]
        pad = [frame(0x0, b" ", fin=False) for _ in range(500)]
        await sock.send(b"".join(fragments[:-1] + pad + [frame(0x0, b"", fin=True)]))
        frames = await read_frames(sock, lambda f: any(op == 0x8 for op, _ in f))
        (close,) = [p for op, p in frames if op == 0x8]
        assert struct.unpack("!H", close[:2])[0] == 1008
        sock.close()
        # a message in a few reasonable fragments is fine
        status, sock = await handshake(backend.ws_port, "FRAG2")
        parts = [text[i : i + 8] for i in range(0, len(text), 8)]
        data = frame(0x1, parts[0], fin=len(parts) == 1)
        data += b"".join(frame(0x0, p, fin=i == len(parts) - 1) for i, p in enumerate(parts[1:], 1))
        await sock.send(data)
        frames = await read_frames(sock, lambda f: any(op == 0x1 for op, _ in f))
        (answer,) = [json.loads(p) for op, p in frames if op == 0x1]
        assert answer[0] == 3 and answer[1] == "h"
        sock.close()


@TRANSPORTS
async def test_pings_are_paced(tmp_path, transport):
    async with running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend:
        status, sock = await handshake(backend.ws_port, "PINGS1")
        assert status == 101
        pings = b"".join(frame(0x9, str(i).encode()) for i in range(500))
        await sock.send(pings + frame(0x1, json.dumps([2, "h", "Heartbeat", {}]).encode()))
        frames = await read_frames(sock, lambda f: any(op == 0x1 for op, _ in f))
        pongs = [p for op, p in frames if op == 0xA]
        assert 1 <= len(pongs) <= 25, len(pongs)
        assert pongs[0] == b"0"  # the first ones are answered, in order
        sock.close()


@TRANSPORTS
@pytest.mark.parametrize("limit", ["fragments", "size"])
async def test_a_ping_right_after_a_closing_frame_does_not_stop_the_server(
    tmp_path, transport, limit
):
    """One write: a message past a limit (too many fragments: 1008; too big: 1009), then
    a ping. trio-websocket handled the ping after its own close and sent a pong in the
    closing state; wsproto refused, and the error ended the whole server. The connection
    is closed with the limit's code, and the next charger is served."""
    async with running_backend(str(tmp_path / "v4e.db"), transport=transport) as backend:
        status, sock = await handshake(backend.ws_port, "PAST1")
        assert status == 101
        if limit == "fragments":
            data = frame(0x1, b"[", fin=False)
            data += b"".join(frame(0x0, b" ", fin=False) for _ in range(500))
            code = 1008
        else:  # a 64 KiB limit crossed by the last fragment of the write
            data = frame(0x1, b" " * 60000, fin=False) + frame(0x0, b" " * 6000, fin=False)
            code = 1009
        await sock.send(data + frame(0x9, b"p"))
        frames = await read_frames(sock, lambda f: any(op == 0x8 for op, _ in f))
        (close,) = [p for op, p in frames if op == 0x8]
        assert struct.unpack("!H", close[:2])[0] == code
        assert not [p for op, p in frames if op == 0xA]  # no pong once closing
        sock.close()
        await still_served(backend.ws_port, "PAST2")


async def test_a_failure_in_trio_websockets_reader_ends_only_its_connection(
    tmp_path, monkeypatch, caplog
):
    """Whatever else may break in trio-websocket's reader (its task runs beside the
    connection's handler, outside the handler's own guard), it ends that connection, not
    the server: here its pong handler is made to fail, and a pong is sent."""
    from trio_websocket import WebSocketConnection

    async def failing(self, event):
        raise RuntimeError("injected failure in the reader")

    monkeypatch.setattr(WebSocketConnection, "_handle_pong_event", failing)
    async with running_backend(str(tmp_path / "v4e.db"), transport="trio-websocket") as backend:
        status, sock = await handshake(backend.ws_port, "READER1")
        assert status == 101
        await sock.send(frame(0xA, b"unasked"))
        await read_frames(sock, lambda f: False)  # until the server closes the socket
        sock.close()
        await still_served(backend.ws_port, "READER2")
    assert "injected failure in the reader" in caplog.text
