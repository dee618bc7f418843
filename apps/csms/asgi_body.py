"""An ASGI wrapper that reads a request's whole body before the app sees the request.

Why (the 60 s hang): when a route answers before the request body has arrived
(a route that takes no body, or a refusal), Hypercorn cannot recycle the keep-alive
connection, and tries to close it from the app's task; Quart-Trio has just cancelled that
task's scope (it cancels when it sees ``http.disconnect``), so the close is cancelled,
the socket stays open, and h11 sits ``PAUSED``: the next request on that connection is
never answered — until the client gives up (60 s for our MCP server's HTTP client).
Clients such as httpx send headers and body in separate segments, so this happened under
load. Reading the body first means the request is complete (h11 ``DONE``) by the time any
answer goes out, so the connection is always recycled normally.

And the last part of each answer is sent shielded from cancellation (idle
connections held forever): Hypercorn recycles the connection, restarting its keep-alive
timer, from inside that send, and Quart-Trio cancels the app's task as soon as it sees the
``http.disconnect`` the recycle announces, so the restart was cancelled and a connection
that had answered one request had no idle bound at all (idle, or sending its next request
head a byte at a time). Hypercorn already shields the socket write itself; the shield adds
only its bookkeeping (a put into the request's queue, restarting the timer, or closing).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


DRAIN_BYTES = 16 * 1024 * 1024
"""How much of a too-large body is read and thrown away so that the client, still
sending it, can read the 413 (closing with unread bytes makes the kernel send a reset, and
a client busy sending sees "connection reset" instead of the answer)."""


def whole_body(
    app: AsgiApp, *, max_bytes: int, timeout: float, drain_bytes: int = DRAIN_BYTES
) -> AsgiApp:
    """``app``, but each HTTP request's body is read in full first (at most ``max_bytes``
    of it: past that the app sees what was read and answers 413 itself). The rest of a
    too-large body is read and discarded, up to ``drain_bytes`` more, so that the client
    gets the 413 on a connection that stays usable. A body that takes longer than
    ``timeout`` seconds is answered 408 and the connection closed."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        reply = finished_shielded(send)  # for the app's answers (Quart-Trio cancels)
        chunks: list[bytes] = []
        size, more = 0, True
        with trio.move_on_after(timeout) as waiting:
            while more and size <= max_bytes + drain_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client went away before sending its body
                body = bytes(message.get("body", b""))
                if size <= max_bytes:
                    chunks.append(body)  # beyond: only drained
                size += len(body)
                more = bool(message.get("more_body", False))
        if waiting.cancelled_caught:
            await answer_json(
                send, 408, "request_timeout", f"the body did not arrive in {timeout:g} s"
            )
            return
        pending: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": more}
        ]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        if size <= max_bytes:
            await app(scope, replay, reply)
            return
        drained = not more  # the whole too-large body was read: the connection is reusable

        async def send_413(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                if not drained:  # bytes of it are still unread: close
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await reply(message)

        await app(scope, replay, send_413)

    return wrapped


def finished_shielded(send: Send) -> Send:
    """``send``, but the answer's last message is sent shielded from cancellation, so that
    Hypercorn's recycling of the connection (done inside it) is not cut short."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await send(message)
        else:
            await send(message)

    return sending


async def answer_json(send: Send, status: int, error: str, message: str) -> None:
    """Answer a JSON error ``{"error", "message"}`` and close the connection."""
    body = json.dumps({"error": error, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
