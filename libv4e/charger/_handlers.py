"""The charger's answers to the CSMS's commands: one ``on_<action>`` method per OCPP 1.6
call (looked up by :class:`~libv4e.transport._handlers.BoundHandlers`), on a class of its
own that acts through the charger's parts. Subclass it to change an answer and pass the
subclass as ``Charger(config, handlers=...)``."""

from __future__ import annotations

import functools
from typing import Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e.charger._base import OutboxItem
from libv4e.charger._face import ChargerFace
from libv4e.charger._model import ChargePointStatus, ConnectorEvent
from libv4e.scenarios._faults import FAULT_VENDOR_ID, handle_fault_transfer
from libv4e.transport._connection import Reply


class CommandHandlers:
    """The answers of one simulated charger to the CSMS's commands."""

    def __init__(self, charger: ChargerFace) -> None:
        self.charger = charger

    async def on_reset(self, req: call.Reset) -> Reply:
        ch = self.charger
        return Reply(
            call_result.Reset(enums.ResetStatus.accepted), after=lambda: ch.reboot(req.type)
        )

    async def on_change_availability(self, req: call.ChangeAvailability) -> Any:
        ch = self.charger
        inoperative = req.type == enums.AvailabilityType.inoperative
        targets = [c for i, c in ch.connectors.items() if req.connector_id in (0, i)]
        if not targets or req.connector_id not in ch.connectors:
            return call_result.ChangeAvailability(enums.AvailabilityStatus.rejected)
        scheduled = False
        for c in targets:
            if inoperative and c.connector_id:  # the connector's controller restarts
                ch.faults.connector_restarted(c.connector_id)
            busy = c.connector_id in ch.sessions or c.connector_id in ch.starting
            if busy or (
                # e.g. Finishing (cable still in) or Faulted: Unavailable once it is free
                inoperative
                and c.connector_id
                and c.status is not ChargePointStatus.unavailable
                and not c.can(ConnectorEvent.INOPERATIVE)
            ):
                c.pending_availability = inoperative
                scheduled = True
                continue
            c.pending_availability = None
            c.inoperative = inoperative
            if inoperative and c.can(ConnectorEvent.INOPERATIVE):
                ch.board.move(c, ConnectorEvent.INOPERATIVE)
            elif not inoperative and c.status is ChargePointStatus.unavailable:
                ch.board.move(c, ConnectorEvent.OPERATIVE)
        ch.persist()
        status = (
            enums.AvailabilityStatus.scheduled if scheduled else enums.AvailabilityStatus.accepted
        )
        return call_result.ChangeAvailability(status)

    async def on_change_configuration(self, req: call.ChangeConfiguration) -> Any:
        ch = self.charger
        secured = ch.security.change(req.key, req.value)
        if secured is not None:  # AuthorizationKey / SecurityProfile (security extension)
            ch.persist()
            if secured != enums.ConfigurationStatus.accepted:
                return call_result.ChangeConfiguration(secured)

            async def reconnect() -> None:  # with the new credentials / profile
                await trio.sleep(0.1)
                await ch.disconnect(1000, "security configuration changed")

            return Reply(call_result.ChangeConfiguration(secured), after=reconnect)
        status = ch.configuration.change(req.key, req.value)
        if status == enums.ConfigurationStatus.accepted:
            ch.metering.wake()  # intervals take effect at once
        ch.persist()
        return call_result.ChangeConfiguration(status)

    async def on_get_configuration(self, req: call.GetConfiguration) -> Any:
        ch = self.charger
        known, unknown = ch.configuration.get(req.key)
        secured = ch.security.configuration_keys(req.key)
        names = {k.key.casefold() for k in secured}
        unknown = [k for k in unknown if k.casefold() not in names]
        return call_result.GetConfiguration(known + secured, unknown or None)

    async def on_remote_start_transaction(self, req: call.RemoteStartTransaction) -> Any:
        ch = self.charger
        connector = ch.charging.free_connector(req.connector_id, id_tag=req.id_tag)
        if connector is None:
            return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
        cid = connector.connector_id
        if req.charging_profile is not None:
            if (
                req.charging_profile.charging_profile_purpose
                != enums.ChargingProfilePurposeType.tx_profile
            ):
                return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
            ch.profiles[connector.connector_id].append(req.charging_profile)
        ch.starting.add(cid)  # until the session begins (or fails to)

        async def start() -> None:
            try:
                await ch.charging.begin_session(cid, req.id_tag, remote=True, claimed=True)
            finally:
                ch.starting.discard(cid)
                if cid not in ch.sessions:  # it did not start: a Scheduled change is due
                    ch.board.apply_scheduled_availability(connector)

        return Reply(
            call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.accepted), after=start
        )

    async def on_remote_stop_transaction(self, req: call.RemoteStopTransaction) -> Any:
        ch = self.charger
        for cid, session in ch.sessions.items():
            if session.transaction_id == req.transaction_id:

                async def stop(cid: int = cid) -> None:
                    ch.end_session(cid, enums.Reason.remote)

                return Reply(
                    call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.accepted),
                    after=stop,
                )
        return call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.rejected)

    async def on_unlock_connector(self, req: call.UnlockConnector) -> Any:
        ch = self.charger
        connector = ch.connectors.get(req.connector_id)
        if connector is None or req.connector_id == 0:
            return call_result.UnlockConnector(enums.UnlockStatus.not_supported)
        if req.connector_id in ch.sessions:
            ch.end_session(req.connector_id, enums.Reason.unlock_command)
        ch.faults.unlocked(req.connector_id)

        async def released() -> None:
            if connector.status is ChargePointStatus.faulted:
                connector.set_error(enums.ChargePointErrorCode.no_error)
                ch.board.move(connector, ConnectorEvent.FAULT_CLEARED)
            elif connector.status in (ChargePointStatus.finishing, ChargePointStatus.preparing):
                ch.unplug(req.connector_id)
            connector.locked = False

        return Reply(call_result.UnlockConnector(enums.UnlockStatus.unlocked), after=released)

    async def on_clear_cache(self, req: call.ClearCache) -> Any:
        ch = self.charger
        ch.auth.cache.clear()
        return call_result.ClearCache(enums.ClearCacheStatus.accepted)

    async def on_get_local_list_version(self, req: call.GetLocalListVersion) -> Any:
        ch = self.charger
        if not ch.configuration.flag("LocalAuthListEnabled"):
            return call_result.GetLocalListVersion(-1)
        return call_result.GetLocalListVersion(ch.auth.version)

    async def on_send_local_list(self, req: call.SendLocalList) -> Any:
        ch = self.charger
        status = ch.auth.send_local_list(req, enabled=ch.configuration.flag("LocalAuthListEnabled"))
        if status == enums.UpdateStatus.accepted:
            for entry in req.local_authorization_list or []:
                info = entry.id_tag_info
                if info is not None and info.status == enums.AuthorizationStatus.accepted:
                    ch.faults.card_repaired(entry.id_tag)
            ch.persist()
        return call_result.SendLocalList(status)

    async def on_trigger_message(self, req: call.TriggerMessage) -> Any:
        ch = self.charger
        what = req.requested_message
        cid = req.connector_id
        if cid is not None and cid not in ch.connectors:
            return call_result.TriggerMessage(enums.TriggerMessageStatus.rejected)

        async def send() -> None:
            if ch.faults.silent():
                return
            if what == enums.MessageTrigger.heartbeat:
                ch.outbox.send(OutboxItem(call.Heartbeat))
            elif what == enums.MessageTrigger.status_notification:
                for c in ch.connectors.values():
                    if cid is None or c.connector_id == cid:
                        ch.board.notify(c)
            elif what == enums.MessageTrigger.meter_values:
                for i in ch.meters:
                    if cid in (None, 0, i):
                        ch.metering.send_meter_values(i, enums.ReadingContext.trigger)
            elif what == enums.MessageTrigger.boot_notification:
                ch.outbox.send(OutboxItem(ch.boot_notification))
            elif what == enums.MessageTrigger.diagnostics_status_notification:
                ch.outbox.send(
                    OutboxItem(
                        lambda: call.DiagnosticsStatusNotification(enums.DiagnosticsStatus.idle)
                    )
                )
            elif what == enums.MessageTrigger.firmware_status_notification:
                ch.outbox.send(
                    OutboxItem(lambda: call.FirmwareStatusNotification(enums.FirmwareStatus.idle))
                )

        return Reply(call_result.TriggerMessage(enums.TriggerMessageStatus.accepted), after=send)

    async def on_data_transfer(self, req: call.DataTransfer) -> Any:
        ch = self.charger
        if req.vendor_id == FAULT_VENDOR_ID:
            return await handle_fault_transfer(ch, req)
        return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)

    async def on_reserve_now(self, req: call.ReserveNow) -> Any:
        ch = self.charger
        c = ch.connectors.get(req.connector_id)
        if c is None or req.connector_id == 0:
            return call_result.ReserveNow(enums.ReservationStatus.rejected)
        if c.status is ChargePointStatus.faulted:
            return call_result.ReserveNow(enums.ReservationStatus.faulted)
        if c.status is ChargePointStatus.unavailable or c.inoperative:
            return call_result.ReserveNow(enums.ReservationStatus.unavailable)
        if (
            c.status is ChargePointStatus.reserved and c.reservation_id == req.reservation_id
        ) or c.status is ChargePointStatus.available:
            from libv4e.protocol._time import parse_time

            expiry = parse_time(req.expiry_date)
            seconds = (expiry - ch.clock()).total_seconds() if expiry else 0
            c.reservation_id, c.reservation_tag = req.reservation_id, req.id_tag
            c.reservation_expiry = trio.current_time() + max(0.0, seconds)
            if c.status is ChargePointStatus.available:
                ch.board.move(c, ConnectorEvent.RESERVE)
            return call_result.ReserveNow(enums.ReservationStatus.accepted)
        return call_result.ReserveNow(enums.ReservationStatus.occupied)

    async def on_cancel_reservation(self, req: call.CancelReservation) -> Any:
        ch = self.charger
        for c in ch.connectors.values():
            if c.reservation_id == req.reservation_id:
                c.reservation_id = None
                ch.board.move(c, ConnectorEvent.RESERVATION_END)
                return call_result.CancelReservation(enums.CancelReservationStatus.accepted)
        return call_result.CancelReservation(enums.CancelReservationStatus.rejected)

    async def on_set_charging_profile(self, req: call.SetChargingProfile) -> Any:
        ch = self.charger
        profile = req.cs_charging_profiles
        cid = req.connector_id
        purpose = profile.charging_profile_purpose
        if cid not in ch.profiles:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.tx_profile and cid not in ch.sessions:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.charge_point_max_profile and cid != 0:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        kept = [
            p
            for p in ch.profiles[cid]
            if p.charging_profile_id != profile.charging_profile_id
            and (p.charging_profile_purpose, p.stack_level) != (purpose, profile.stack_level)
        ]
        ch.profiles[cid] = [*kept, profile]
        for i in ch.sessions:
            ch.metering.update_meter(i)
        return call_result.SetChargingProfile(enums.ChargingProfileStatus.accepted)

    async def on_clear_charging_profile(self, req: call.ClearChargingProfile) -> Any:
        ch = self.charger
        removed = False
        for cid, profiles in ch.profiles.items():
            if req.connector_id not in (None, cid):
                continue
            keep = []
            for p in profiles:
                match = (
                    req.id in (None, p.charging_profile_id)
                    and req.charging_profile_purpose in (None, p.charging_profile_purpose)
                    and req.stack_level in (None, p.stack_level)
                )
                if match:
                    removed = True
                else:
                    keep.append(p)
            ch.profiles[cid] = keep
        for i in ch.sessions:
            ch.metering.update_meter(i)
        status = (
            enums.ClearChargingProfileStatus.accepted
            if removed
            else enums.ClearChargingProfileStatus.unknown
        )
        return call_result.ClearChargingProfile(status)

    async def on_get_composite_schedule(self, req: call.GetCompositeSchedule) -> Any:
        ch = self.charger
        if req.connector_id not in ch.connectors:
            return call_result.GetCompositeSchedule(enums.GetCompositeScheduleStatus.rejected)
        cid = req.connector_id or 1
        meter = ch.meters[cid]
        limit_w = ch.metering.offered_w(cid)
        unit = req.charging_rate_unit or enums.ChargingRateUnitType.watts
        limit = (
            limit_w
            if unit == enums.ChargingRateUnitType.watts
            else limit_w / (meter.voltage_v * meter.phases)
        )
        schedule = datatypes.ChargingSchedule(
            charging_rate_unit=unit,
            charging_schedule_period=[datatypes.ChargingSchedulePeriod(0, round(limit, 1))],
            duration=req.duration,
            start_schedule=ch.now(),
        )
        return call_result.GetCompositeSchedule(
            enums.GetCompositeScheduleStatus.accepted, req.connector_id, ch.now(), schedule
        )

    async def on_get_diagnostics(self, req: call.GetDiagnostics) -> Any:
        ch = self.charger
        name = f"diagnostics-{ch.cp_id}-{ch.clock():%Y%m%d%H%M%S}.log"

        async def upload() -> None:
            for status in (enums.DiagnosticsStatus.uploading, enums.DiagnosticsStatus.uploaded):
                ch.outbox.send(
                    OutboxItem(functools.partial(call.DiagnosticsStatusNotification, status))
                )
                await trio.sleep(0.2)

        return Reply(call_result.GetDiagnostics(name), after=upload)

    async def on_update_firmware(self, req: call.UpdateFirmware) -> Any:
        ch = self.charger

        async def update() -> None:
            steps = (
                enums.FirmwareStatus.downloading,
                enums.FirmwareStatus.downloaded,
                enums.FirmwareStatus.installing,
                enums.FirmwareStatus.installed,
            )
            for status in steps:
                ch.outbox.send(
                    OutboxItem(functools.partial(call.FirmwareStatusNotification, status))
                )
                await trio.sleep(0.2)
            ch.firmware_version = f"{ch.config.firmware_version}+update"
            await ch.reboot(enums.ResetType.hard)

        return Reply(call_result.UpdateFirmware(), after=update)

    # -- the security extension (state in ``ch.security``) -------------------------------

    async def on_extended_trigger_message(self, req: call.ExtendedTriggerMessage) -> Any:
        ch = self.charger
        what = str(req.requested_message)
        if what == "SignChargePointCertificate":

            async def sign() -> None:
                ch.outbox.send(OutboxItem(ch.security.new_csr))

            return Reply(
                call_result.ExtendedTriggerMessage(enums.TriggerMessageStatus.accepted),
                after=sign,
            )
        if what == "LogStatusNotification":

            async def log_status() -> None:
                ch.outbox.send(
                    OutboxItem(
                        functools.partial(
                            call.LogStatusNotification, enums.UploadLogStatus.idle, None
                        )
                    )
                )

            return Reply(
                call_result.ExtendedTriggerMessage(enums.TriggerMessageStatus.accepted),
                after=log_status,
            )
        if what in {m.value for m in enums.MessageTrigger} and what not in (
            "DiagnosticsStatusNotification",
        ):
            answer = await self.on_trigger_message(
                call.TriggerMessage(enums.MessageTrigger(what), req.connector_id)
            )
            result = answer.result if isinstance(answer, Reply) else answer
            status = enums.TriggerMessageStatus(str(result.status))
            return Reply(
                call_result.ExtendedTriggerMessage(status),
                after=answer.after if isinstance(answer, Reply) else None,
            )
        return call_result.ExtendedTriggerMessage(enums.TriggerMessageStatus.not_implemented)

    async def on_certificate_signed(self, req: call.CertificateSigned) -> Any:
        ch = self.charger
        result = ch.security.certificate_signed(req.certificate_chain)
        if result.status != enums.CertificateSignedStatus.accepted:
            event = ch.security.event(ch.now(), "InvalidChargePointCertificate")
            ch.outbox.send(OutboxItem(lambda: event))
        ch.persist()
        return result

    async def on_install_certificate(self, req: call.InstallCertificate) -> Any:
        ch = self.charger
        result = ch.security.install(req)
        ch.persist()
        return result

    async def on_get_installed_certificate_ids(self, req: call.GetInstalledCertificateIds) -> Any:
        ch = self.charger
        return ch.security.installed_ids(req)

    async def on_delete_certificate(self, req: call.DeleteCertificate) -> Any:
        ch = self.charger
        result = ch.security.delete(req)
        ch.persist()
        return result

    async def on_signed_update_firmware(self, req: call.SignedUpdateFirmware) -> Any:
        ch = self.charger
        request_id = req.request_id

        async def update() -> None:
            steps = (
                "Downloading",
                "Downloaded",
                "SignatureVerified",
                "Installing",
                "Installed",
            )
            for status in steps:
                ch.outbox.send(
                    OutboxItem(
                        functools.partial(
                            call.SignedFirmwareStatusNotification,
                            enums.FirmwareStatus(status),
                            request_id,
                        )
                    )
                )
                await trio.sleep(0.2)
            ch.firmware_version = f"{ch.config.firmware_version}+signed"
            event = ch.security.event(ch.now(), "FirmwareUpdated")
            ch.outbox.send(OutboxItem(lambda: event))
            await ch.reboot(enums.ResetType.hard)

        return Reply(
            call_result.SignedUpdateFirmware(enums.UpdateFirmwareStatus.accepted), after=update
        )

    async def on_get_log(self, req: call.GetLog) -> Any:
        ch = self.charger
        request_id = req.request_id
        name = f"{str(req.log_type).lower()}-{ch.cp_id}-{ch.clock():%Y%m%d%H%M%S}.log"

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                ch.outbox.send(
                    OutboxItem(
                        functools.partial(
                            call.LogStatusNotification, enums.UploadLogStatus(status), request_id
                        )
                    )
                )
                await trio.sleep(0.2)

        return Reply(call_result.GetLog(enums.LogStatus.accepted, name), after=upload)
