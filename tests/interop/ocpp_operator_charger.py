"""A charge point written with the `ocpp` package's asyncio ChargePoint (websockets) that
implements the operator-facing 1.6 profiles the simple way a third-party charger would:
Local Auth List Management, Reservation, Smart Charging, Remote Trigger, Firmware
Management. Interop peer for tests: prints one JSON line per event on stdout.

Usage: ocpp_operator_charger.py ws://127.0.0.1:PORT CP_ID [--no-local-list] [--max-list N]

Connectors: 1 and 4 Available, 2 Faulted, 3 Inoperative (Unavailable)."""

import asyncio
import datetime as dt
import json
import sys

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as cp
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

ARGS = sys.argv[3:]
LOCAL_LIST = "--no-local-list" not in ARGS
MAX_LIST = int(ARGS[ARGS.index("--max-list") + 1]) if "--max-list" in ARGS else 100


def emit(**event):
    print(json.dumps(event), flush=True)


def now():
    return dt.datetime.now(dt.UTC).isoformat()


class ChargePoint(cp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.status = {
            0: "Available",
            1: "Available",
            2: "Faulted",
            3: "Unavailable",
            4: "Available",
        }
        self.list_version = 0
        self.local_list = {}
        self.reservations = {}  # reservation id -> (connector, id tag)
        self.profiles = []  # (connector, profile dict in snake_case)
        self.sessions = {}  # connector -> transaction id
        self.meter = 0
        self.tasks = set()

    def spawn(self, coro):
        """Run ``coro`` in the background (keeping a reference until it ends)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def notify(self, connector):
        await self.call(
            call.StatusNotification(
                connector_id=connector, error_code="NoError", status=self.status[connector]
            )
        )

    # -- Local Auth List Management ---------------------------------------------------------

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self):
        return call_result.GetLocalListVersion(list_version=self.list_version if LOCAL_LIST else -1)

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version, update_type, local_authorization_list=()):
        entries = list(local_authorization_list)
        emit(
            event="SendLocalList",
            update_type=update_type,
            list_version=list_version,
            tags=[e["id_tag"] for e in entries],
        )
        if not LOCAL_LIST:
            return call_result.SendLocalList(status="NotSupported")
        if update_type == "Full":
            new = {e["id_tag"]: e["id_tag_info"] for e in entries}
        else:
            if list_version <= self.list_version:
                return call_result.SendLocalList(status="VersionMismatch")
            new = dict(self.local_list)
            for e in entries:
                if e.get("id_tag_info") is None:
                    new.pop(e["id_tag"], None)
                else:
                    new[e["id_tag"]] = e["id_tag_info"]
        if len(new) > MAX_LIST:
            return call_result.SendLocalList(status="Failed")
        self.local_list, self.list_version = new, list_version
        emit(event="LocalList", version=self.list_version, tags=sorted(self.local_list))
        return call_result.SendLocalList(status="Accepted")

    # -- Reservation ------------------------------------------------------------------------

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **kw):
        emit(event="ReserveNow", connector_id=connector_id, reservation_id=reservation_id)
        status = self.status.get(connector_id)
        if connector_id == 0 or status is None:
            return call_result.ReserveNow(status="Rejected")
        if status == "Faulted":
            return call_result.ReserveNow(status="Faulted")
        if status == "Unavailable":
            return call_result.ReserveNow(status="Unavailable")
        held = self.reservations.get(reservation_id)
        if status != "Available" and not (held and held[0] == connector_id):
            return call_result.ReserveNow(status="Occupied")
        self.reservations[reservation_id] = (connector_id, id_tag)
        self.status[connector_id] = "Reserved"
        self.spawn(self.notify(connector_id))
        return call_result.ReserveNow(status="Accepted")

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id):
        held = self.reservations.pop(reservation_id, None)
        if held is None:
            return call_result.CancelReservation(status="Rejected")
        self.status[held[0]] = "Available"
        self.spawn(self.notify(held[0]))
        return call_result.CancelReservation(status="Accepted")

    # -- Core: remote start / stop ---------------------------------------------------------------

    def _startable(self, connector_id, id_tag):
        status = self.status.get(connector_id)
        if status == "Available":
            return True
        return status == "Reserved" and any(
            c == connector_id and t == id_tag for c, t in self.reservations.values()
        )

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=1, charging_profile=None):
        if not self._startable(connector_id, id_tag):
            return call_result.RemoteStartTransaction(status="Rejected")
        self.status[connector_id] = "Preparing"
        if charging_profile is not None:
            self.profiles.append((connector_id, charging_profile))
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    async def after_remote_start(self, id_tag, connector_id=1, charging_profile=None):
        if self.status.get(connector_id) == "Preparing" and connector_id not in self.sessions:
            self.spawn(self.start_transaction(connector_id, id_tag))

    async def start_transaction(self, connector_id, id_tag):
        reservation = next(
            (r for r, (c, t) in self.reservations.items() if c == connector_id and t == id_tag),
            None,
        )
        self.sessions[connector_id] = None
        result = await self.call(
            call.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=self.meter,
                timestamp=now(),
                reservation_id=reservation,
            )
        )
        self.reservations.pop(reservation, None)
        self.sessions[connector_id] = result.transaction_id
        self.status[connector_id] = "Charging"
        await self.notify(connector_id)
        emit(
            event="StartTransaction.conf",
            transaction_id=result.transaction_id,
            reservation_id=reservation,
            connector_id=connector_id,
        )

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id):
        for connector, tx in self.sessions.items():
            if tx == transaction_id:
                self.spawn(self.stop_transaction(connector))
                return call_result.RemoteStopTransaction(status="Accepted")
        return call_result.RemoteStopTransaction(status="Rejected")

    async def stop_transaction(self, connector_id):
        tx = self.sessions.pop(connector_id)
        self.meter += 1000
        await self.call(
            call.StopTransaction(
                meter_stop=self.meter, timestamp=now(), transaction_id=tx, reason="Remote"
            )
        )
        self.profiles = [
            (c, p)
            for c, p in self.profiles
            if not (c == connector_id and p["charging_profile_purpose"] == "TxProfile")
        ]
        self.status[connector_id] = "Available"
        await self.notify(connector_id)
        emit(event="StopTransaction", transaction_id=tx)

    # -- Smart Charging ---------------------------------------------------------------------------

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles):
        p = cs_charging_profiles
        purpose = p["charging_profile_purpose"]
        emit(event="SetChargingProfile", connector_id=connector_id, id=p["charging_profile_id"])
        if connector_id not in self.status:
            return call_result.SetChargingProfile(status="Rejected")
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return call_result.SetChargingProfile(status="Rejected")
        if purpose == "TxProfile" and self.sessions.get(connector_id) is None:
            return call_result.SetChargingProfile(status="Rejected")
        self.profiles = [
            (c, q)
            for c, q in self.profiles
            if q["charging_profile_id"] != p["charging_profile_id"]
            and not (
                c == connector_id
                and (q["charging_profile_purpose"], q["stack_level"]) == (purpose, p["stack_level"])
            )
        ]
        self.profiles.append((connector_id, p))
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(
        self, id=None, connector_id=None, charging_profile_purpose=None, stack_level=None
    ):
        def matches(c, p):
            if id is not None:
                return p["charging_profile_id"] == id
            return (
                connector_id in (None, c)
                and charging_profile_purpose in (None, p["charging_profile_purpose"])
                and stack_level in (None, p["stack_level"])
            )

        kept = [(c, p) for c, p in self.profiles if not matches(c, p)]
        removed = len(self.profiles) - len(kept)
        self.profiles = kept
        emit(event="ClearChargingProfile", removed=removed)
        return call_result.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id, duration, charging_rate_unit=None):
        if connector_id not in self.status:
            return call_result.GetCompositeSchedule(status="Rejected")
        limits = [
            (
                float(p["charging_schedule"]["charging_schedule_period"][0]["limit"]),
                p["charging_schedule"]["charging_rate_unit"],
            )
            for c, p in self.profiles
            if c in (0, connector_id)
        ]
        limit, unit = min(limits) if limits else (22000.0, "W")
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=now(),
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            },
        )

    # -- Remote Trigger, Firmware Management, Core rest ------------------------------------------

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, connector_id=None):
        emit(event="TriggerMessage", requested_message=requested_message)
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    async def after_trigger(self, requested_message, connector_id=None):
        if requested_message == "Heartbeat":
            self.spawn(self.call(call.Heartbeat()))

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, location, **kw):
        emit(event="GetDiagnostics", location=location, **kw)
        return call_result.GetDiagnostics(file_name="diag.log")

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, **kw):
        self.spawn(self.report("diagnostics", ["Uploading", "Uploaded"]))

    @on(Action.update_firmware)
    async def on_update_firmware(self, location, retrieve_date, **kw):
        emit(event="UpdateFirmware", location=location, retrieve_date=retrieve_date, **kw)
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    async def after_update_firmware(self, **kw):
        steps = ["Downloading", "Downloaded", "Installing", "Installed"]
        self.spawn(self.report("firmware", steps))

    async def report(self, kind, statuses):
        for status in statuses:
            if kind == "firmware":
                await self.call(call.FirmwareStatusNotification(status=status))
            else:
                await self.call(call.DiagnosticsStatusNotification(status=status))
        emit(event="reported", kind=kind)

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None):
        emit(event="GetConfiguration", key=key)
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "30"}],
            unknown_key=[k for k in key or [] if k != "HeartbeatInterval"],
        )

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id, type):
        emit(event="ChangeAvailability", connector_id=connector_id, type=type)
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.clear_cache)
    async def on_clear_cache(self):
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id, message_id=None, data=None):
        emit(event="DataTransfer", vendor_id=vendor_id, message_id=message_id, data=data)
        return call_result.DataTransfer(status="Accepted", data="pong")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id):
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.reset)
    async def on_reset(self, type):
        emit(event="Reset", type=type)
        return call_result.Reset(status="Accepted")

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value):
        return call_result.ChangeConfiguration(status="Accepted")

    async def run(self):
        boot = await self.call(
            call.BootNotification(charge_point_model="OpModel", charge_point_vendor="OpVendor")
        )
        emit(event="BootNotification.conf", status=boot.status)
        for connector in self.status:
            await self.notify(connector)
        emit(event="ready")


async def main(url, cp_id):
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:
        charger = ChargePoint(cp_id, ws)
        await asyncio.gather(charger.start(), charger.run())


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        sys.exit(0)
