"""Charger-initiated DataTransfer: a vendor's handler registered on the CentralSystem
answers it; any other vendor gets UnknownVendorId (OCPP 1.6 §5.6)."""

from __future__ import annotations

import json

from ocpp.v16 import call, call_result, enums
from trio_websocket import open_websocket_url

from tests.support import running_backend, ws_url


async def test_a_registered_vendor_answers_data_transfer_and_others_are_unknown(tmp_path):
    seen = []

    async def acme(cp_id: str, request: call.DataTransfer) -> call_result.DataTransfer:
        seen.append((cp_id, request.message_id, request.data))
        return call_result.DataTransfer(enums.DataTransferStatus.accepted, data="pong")

    async with running_backend(str(tmp_path / "v4e.db")) as backend:
        backend.csms.register_data_transfer("ACME", acme)
        async with open_websocket_url(f"{ws_url(backend)}/DT1", subprotocols=["ocpp1.6"]) as ws:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}  # before: SecurityError
            await ws.send_message(json.dumps([2, "boot", "BootNotification", boot]))
            assert json.loads(await ws.get_message())[2]["status"] == "Accepted"
            for uid, vendor in (("a", "ACME"), ("b", "OTHER")):
                payload = {"vendorId": vendor, "messageId": "ping", "data": "hello"}
                await ws.send_message(json.dumps([2, uid, "DataTransfer", payload]))
                answer = json.loads(await ws.get_message())
                assert answer[:2] == [3, uid]
                if vendor == "ACME":
                    assert answer[2] == {"status": "Accepted", "data": "pong"}
                else:
                    assert answer[2] == {"status": "UnknownVendorId"}
    assert seen == [("DT1", "ping", "hello")]
