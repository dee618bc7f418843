"""Helpers for end-to-end tests: a backend on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio
from ocpp.v16 import call, call_result, enums
from trio_websocket import open_websocket_url

from libv4e import OcppConnection, open_ocpp
from libv4e.csms._central import CsmsConfig
from libv4e_apps.csms.backend import Backend, BackendConfig, serve_backend

NOW = "2024-05-01T12:00:00Z"


@contextlib.asynccontextmanager
async def running_backend(db_path: str, ws_port: int = 0, **csms: Any) -> AsyncIterator[Backend]:
    """A backend (CSMS + API) for the duration of the block."""
    config = BackendConfig(
        host="127.0.0.1", ws_port=ws_port, api_port=0, db_path=db_path, csms=CsmsConfig(**csms)
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(config, task_status=task_status)
        )
        try:
            yield backend
        finally:
            nursery.cancel_scope.cancel()


def api(backend: Backend) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{backend.api_port}", timeout=10)


def ws_url(backend: Backend) -> str:
    return f"ws://127.0.0.1:{backend.ws_port}"


async def boot(conn: OcppConnection, connectors: int = 1) -> Any:
    """BootNotification then an Available StatusNotification per connector."""
    result = await conn.call(
        call.BootNotification(
            "Model-X", "Vendor-Y", charge_point_serial_number="SN1", firmware_version="1.2.3"
        ),
        timeout=5,
    )
    for c in range(connectors + 1):
        await conn.call(
            call.StatusNotification(
                c, enums.ChargePointErrorCode.no_error, enums.ChargePointStatus.available
            ),
            timeout=5,
        )
    return result


class PlainCharger:
    """A minimal OCPP charger for tests: answers commands, records what it was asked."""

    def __init__(self):
        self.received: list[Any] = []

    def handlers(self) -> dict[str, Any]:
        async def record(payload, answer):
            self.received.append(payload)
            return answer

        return {
            "Reset": lambda p: record(p, call_result.Reset("Accepted")),
            "ChangeAvailability": lambda p: record(p, call_result.ChangeAvailability("Accepted")),
            "ChangeConfiguration": lambda p: record(p, call_result.ChangeConfiguration("Accepted")),
            "RemoteStartTransaction": lambda p: record(
                p, call_result.RemoteStartTransaction("Accepted")
            ),
            "RemoteStopTransaction": lambda p: record(
                p, call_result.RemoteStopTransaction("Accepted")
            ),
            "UnlockConnector": lambda p: record(p, call_result.UnlockConnector("Unlocked")),
            "SendLocalList": lambda p: record(p, call_result.SendLocalList("Accepted")),
            "GetLocalListVersion": lambda p: record(p, call_result.GetLocalListVersion(3)),
        }


@contextlib.asynccontextmanager
async def plain_charger(
    backend: Backend, cp_id: str = "EVSE001"
) -> AsyncIterator[tuple[OcppConnection, PlainCharger]]:
    charger = PlainCharger()
    async with open_ocpp(ws_url(backend), cp_id, handlers=charger.handlers()) as conn:
        await boot(conn)
        yield conn, charger


BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def raw_call(ws: Any, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send a CALL on a raw websocket and return the frame that answers it (CALLRESULT or
    CALLERROR)."""
    await ws.send_message(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.get_message())
        if frame[0] in (3, 4) and frame[1] == uid:
            return frame


@contextlib.asynccontextmanager
async def booted_ws(url: str, **options: Any) -> AsyncIterator[Any]:
    """A raw websocket (subprotocol ocpp1.6) whose id has booted (before that, the CSMS
    stores nothing)."""
    options.setdefault("subprotocols", ["ocpp1.6"])
    async with open_websocket_url(url, **options) as ws:
        assert (await raw_call(ws, "boot0", "BootNotification", BOOT))[2]["status"] == "Accepted"
        yield ws
