"""The servers the benchmark compares, each run as its own process:

- ``reference``: a central system built the way the ``ocpp`` package documents it
  (asyncio ``ChargePoint`` on a ``websockets`` server), answering the same messages;
- ``echo-trio``: a bare OCPP-shaped echo on trio-websocket (the former transport's ceiling);
- ``echo-wsproto``: the same on libv4e's lean wsproto transport (our transport's ceiling);
- ``echo-websockets``: the same on ``websockets`` (the reference's transport ceiling).

    python -m bench.servers reference|echo-trio|echo-wsproto|echo-websockets PORT
"""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import sys


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def _serve_websockets(handler, port: int) -> None:
    """Serve ``handler`` with ``websockets`` (as the ocpp package's docs do), forever."""
    import websockets

    async with websockets.serve(
        handler,
        "127.0.0.1",
        port,
        subprotocols=["ocpp1.6"],
        ping_interval=None,
        compression=None,
    ):
        print("ready", flush=True)
        await asyncio.Future()


def reference(port: int) -> None:
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action

    class CP(ChargePoint):
        @on(Action.boot_notification)
        async def boot(self, charge_point_vendor, charge_point_model, **kwargs):
            return call_result.BootNotification(current_time=now(), interval=30, status="Accepted")

        @on(Action.heartbeat)
        async def heartbeat(self):
            return call_result.Heartbeat(current_time=now())

        @on(Action.status_notification)
        async def status(self, connector_id, error_code, status, **kwargs):
            return call_result.StatusNotification()

        @on(Action.meter_values)
        async def meter(self, connector_id, meter_value, **kwargs):
            return call_result.MeterValues()

    async def handler(ws):
        await CP(ws.request.path.rsplit("/", 1)[-1], ws).start()

    asyncio.run(_serve_websockets(handler, port))


def echo_websockets(port: int) -> None:
    async def handler(ws):
        async for text in ws:
            uid = text.split('"', 2)[1]
            await ws.send(f'[3,"{uid}",{{}}]')

    asyncio.run(_serve_websockets(handler, port))


def echo_trio(port: int) -> None:
    import trio
    from trio_websocket import ConnectionClosed, serve_websocket

    async def handler(request):
        ws = await request.accept(subprotocol="ocpp1.6")
        try:
            while True:
                text = await ws.get_message()
                uid = text.split('"', 2)[1]
                await ws.send_message(f'[3,"{uid}",{{}}]')
        except ConnectionClosed:
            pass

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_websocket, handler, "127.0.0.1", port, None)
            print("ready", flush=True)

    trio.run(main)


def echo_wsproto(port: int) -> None:
    import trio
    from trio_websocket import ConnectionClosed

    from libv4e.transport import Handshake, serve_websockets

    async def handler(request: Handshake) -> None:
        ws = await request.accept("ocpp1.6", 65536)
        try:
            while True:
                text = await ws.get_message()
                uid = text.split('"', 2)[1]  # type: ignore[arg-type]
                await ws.send_message(f'[3,"{uid}",{{}}]')
        except ConnectionClosed:
            pass

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_websockets(
                    handler,
                    "127.0.0.1",
                    port,
                    ssl_context=None,
                    handshake_timeout=20,
                    task_status=task_status,
                )
            )
            print("ready", flush=True)

    trio.run(main)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    {
        "reference": reference,
        "echo-trio": echo_trio,
        "echo-wsproto": echo_wsproto,
        "echo-websockets": echo_websockets,
    }[sys.argv[1]](int(sys.argv[2]))
