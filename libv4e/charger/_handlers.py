"""The charger's answers to the CSMS's commands: one ``on_<action>`` method per OCPP 1.6
call (looked up by :class:`~libv4e.transport._handlers.BoundHandlers`)."""

from __future__ import annotations

import functools
from typing import Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e.charger._base import OutboxItem
from libv4e.charger._model import ChargePointStatus, ConnectorEvent
from libv4e.charger._runtime import RuntimeCharger
from libv4e.scenarios._faults import FAULT_VENDOR_ID, handle_fault_transfer
from libv4e.transport._connection import Reply


class HandlerCharger(RuntimeCharger):
    """Handlers for CSMS commands."""

    async def on_reset(self, req: call.Reset) -> Reply:
        return Reply(
            call_result.Reset(enums.ResetStatus.accepted), after=lambda: self.reboot(req.type)
        )

    async def on_change_availability(self, req: call.ChangeAvailability) -> Any:
        inoperative = req.type == enums.AvailabilityType.inoperative
        targets = [c for i, c in self.connectors.items() if req.connector_id in (0, i)]
        if not targets or req.connector_id not in self.connectors:
            return call_result.ChangeAvailability(enums.AvailabilityStatus.rejected)
        scheduled = False
        for c in targets:
            if inoperative and c.connector_id:  # the connector's controller restarts
                self.faults.connector_restarted(c.connector_id)
            busy = c.connector_id in self.sessions or c.connector_id in self._starting
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
                self._move(c, ConnectorEvent.INOPERATIVE)
            elif not inoperative and c.status is ChargePointStatus.unavailable:
                self._move(c, ConnectorEvent.OPERATIVE)
        self.persist()
        status = (
            enums.AvailabilityStatus.scheduled if scheduled else enums.AvailabilityStatus.accepted
        )
        return call_result.ChangeAvailability(status)

    async def on_change_configuration(self, req: call.ChangeConfiguration) -> Any:
        secured = self.security.change(req.key, req.value)
        if secured is not None:  # AuthorizationKey / SecurityProfile (security extension)
            self.persist()
            if secured != enums.ConfigurationStatus.accepted:
                return call_result.ChangeConfiguration(secured)

            async def reconnect() -> None:  # with the new credentials / profile
                await trio.sleep(0.1)
                await self.disconnect(1000, "security configuration changed")

            return Reply(call_result.ChangeConfiguration(secured), after=reconnect)
        status = self.configuration.change(req.key, req.value)
        if status == enums.ConfigurationStatus.accepted:
            self._wake()  # intervals take effect at once
        self.persist()
        return call_result.ChangeConfiguration(status)

    async def on_get_configuration(self, req: call.GetConfiguration) -> Any:
        known, unknown = self.configuration.get(req.key)
        secured = self.security.configuration_keys(req.key)
        names = {k.key.casefold() for k in secured}
        unknown = [k for k in unknown if k.casefold() not in names]
        return call_result.GetConfiguration(known + secured, unknown or None)

    async def on_remote_start_transaction(self, req: call.RemoteStartTransaction) -> Any:
        connector = self.free_connector(req.connector_id, id_tag=req.id_tag)
        if connector is None:
            return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
        cid = connector.connector_id
        if req.charging_profile is not None:
            if (
                req.charging_profile.charging_profile_purpose
                != enums.ChargingProfilePurposeType.tx_profile
            ):
                return call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.rejected)
            self.profiles[connector.connector_id].append(req.charging_profile)
        self._starting.add(cid)  # until the session begins (or fails to)

        async def start() -> None:
            try:
                await self.begin_session(cid, req.id_tag, remote=True, claimed=True)
            finally:
                self._starting.discard(cid)
                if cid not in self.sessions:  # it did not start: a Scheduled change is due
                    self._apply_scheduled_availability(connector)

        return Reply(
            call_result.RemoteStartTransaction(enums.RemoteStartStopStatus.accepted), after=start
        )

    async def on_remote_stop_transaction(self, req: call.RemoteStopTransaction) -> Any:
        for cid, session in self.sessions.items():
            if session.transaction_id == req.transaction_id:

                async def stop(cid: int = cid) -> None:
                    self.end_session(cid, enums.Reason.remote)

                return Reply(
                    call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.accepted),
                    after=stop,
                )
        return call_result.RemoteStopTransaction(enums.RemoteStartStopStatus.rejected)

    async def on_unlock_connector(self, req: call.UnlockConnector) -> Any:
        connector = self.connectors.get(req.connector_id)
        if connector is None or req.connector_id == 0:
            return call_result.UnlockConnector(enums.UnlockStatus.not_supported)
        if req.connector_id in self.sessions:
            self.end_session(req.connector_id, enums.Reason.unlock_command)
        self.faults.unlocked(req.connector_id)

        async def released() -> None:
            if connector.status is ChargePointStatus.faulted:
                connector.set_error(enums.ChargePointErrorCode.no_error)
                self._move(connector, ConnectorEvent.FAULT_CLEARED)
            elif connector.status in (ChargePointStatus.finishing, ChargePointStatus.preparing):
                self.unplug(req.connector_id)
            connector.locked = False

        return Reply(call_result.UnlockConnector(enums.UnlockStatus.unlocked), after=released)

    async def on_clear_cache(self, req: call.ClearCache) -> Any:
        self.auth.cache.clear()
        return call_result.ClearCache(enums.ClearCacheStatus.accepted)

    async def on_get_local_list_version(self, req: call.GetLocalListVersion) -> Any:
        if not self.configuration.flag("LocalAuthListEnabled"):
            return call_result.GetLocalListVersion(-1)
        return call_result.GetLocalListVersion(self.auth.version)

    async def on_send_local_list(self, req: call.SendLocalList) -> Any:
        status = self.auth.send_local_list(
            req, enabled=self.configuration.flag("LocalAuthListEnabled")
        )
        if status == enums.UpdateStatus.accepted:
            for entry in req.local_authorization_list or []:
                info = entry.id_tag_info
                if info is not None and info.status == enums.AuthorizationStatus.accepted:
                    self.faults.card_repaired(entry.id_tag)
            self.persist()
        return call_result.SendLocalList(status)

    async def on_trigger_message(self, req: call.TriggerMessage) -> Any:
        what = req.requested_message
        cid = req.connector_id
        if cid is not None and cid not in self.connectors:
            return call_result.TriggerMessage(enums.TriggerMessageStatus.rejected)

        async def send() -> None:
            if self.faults.silent():
                return
            if what == enums.MessageTrigger.heartbeat:
                self._send(OutboxItem(call.Heartbeat))
            elif what == enums.MessageTrigger.status_notification:
                for c in self.connectors.values():
                    if cid is None or c.connector_id == cid:
                        self._notify(c)
            elif what == enums.MessageTrigger.meter_values:
                for i in self.meters:
                    if cid in (None, 0, i):
                        self._send_meter_values(i, enums.ReadingContext.trigger)
            elif what == enums.MessageTrigger.boot_notification:
                self._send(OutboxItem(self.boot_notification))
            elif what == enums.MessageTrigger.diagnostics_status_notification:
                self._send(
                    OutboxItem(
                        lambda: call.DiagnosticsStatusNotification(enums.DiagnosticsStatus.idle)
                    )
                )
            elif what == enums.MessageTrigger.firmware_status_notification:
                self._send(
                    OutboxItem(lambda: call.FirmwareStatusNotification(enums.FirmwareStatus.idle))
                )

        return Reply(call_result.TriggerMessage(enums.TriggerMessageStatus.accepted), after=send)

    async def on_data_transfer(self, req: call.DataTransfer) -> Any:
        if req.vendor_id == FAULT_VENDOR_ID:
            return await handle_fault_transfer(self, req)
        return call_result.DataTransfer(enums.DataTransferStatus.unknown_vendor_id)

    async def on_reserve_now(self, req: call.ReserveNow) -> Any:
        c = self.connectors.get(req.connector_id)
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
            seconds = (expiry - self.clock()).total_seconds() if expiry else 0
            c.reservation_id, c.reservation_tag = req.reservation_id, req.id_tag
            c.reservation_expiry = trio.current_time() + max(0.0, seconds)
            if c.status is ChargePointStatus.available:
                self._move(c, ConnectorEvent.RESERVE)
            return call_result.ReserveNow(enums.ReservationStatus.accepted)
        return call_result.ReserveNow(enums.ReservationStatus.occupied)

    async def on_cancel_reservation(self, req: call.CancelReservation) -> Any:
        for c in self.connectors.values():
            if c.reservation_id == req.reservation_id:
                c.reservation_id = None
                self._move(c, ConnectorEvent.RESERVATION_END)
                return call_result.CancelReservation(enums.CancelReservationStatus.accepted)
        return call_result.CancelReservation(enums.CancelReservationStatus.rejected)

    async def on_set_charging_profile(self, req: call.SetChargingProfile) -> Any:
        profile = req.cs_charging_profiles
        cid = req.connector_id
        purpose = profile.charging_profile_purpose
        if cid not in self.profiles:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.tx_profile and cid not in self.sessions:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        if purpose == enums.ChargingProfilePurposeType.charge_point_max_profile and cid != 0:
            return call_result.SetChargingProfile(enums.ChargingProfileStatus.rejected)
        kept = [
            p
            for p in self.profiles[cid]
            if p.charging_profile_id != profile.charging_profile_id
            and (p.charging_profile_purpose, p.stack_level) != (purpose, profile.stack_level)
        ]
        self.profiles[cid] = [*kept, profile]
        for i in self.sessions:
            self._update_meter(i)
        return call_result.SetChargingProfile(enums.ChargingProfileStatus.accepted)

    async def on_clear_charging_profile(self, req: call.ClearChargingProfile) -> Any:
        removed = False
        for cid, profiles in self.profiles.items():
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
            self.profiles[cid] = keep
        for i in self.sessions:
            self._update_meter(i)
        status = (
            enums.ClearChargingProfileStatus.accepted
            if removed
            else enums.ClearChargingProfileStatus.unknown
        )
        return call_result.ClearChargingProfile(status)

    async def on_get_composite_schedule(self, req: call.GetCompositeSchedule) -> Any:
        if req.connector_id not in self.connectors:
            return call_result.GetCompositeSchedule(enums.GetCompositeScheduleStatus.rejected)
        cid = req.connector_id or 1
        meter = self.meters[cid]
        limit_w = self.offered_w(cid)
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
            start_schedule=self.now(),
        )
        return call_result.GetCompositeSchedule(
            enums.GetCompositeScheduleStatus.accepted, req.connector_id, self.now(), schedule
        )

    async def on_get_diagnostics(self, req: call.GetDiagnostics) -> Any:
        name = f"diagnostics-{self.cp_id}-{self.clock():%Y%m%d%H%M%S}.log"

        async def upload() -> None:
            for status in (enums.DiagnosticsStatus.uploading, enums.DiagnosticsStatus.uploaded):
                self._send(
                    OutboxItem(functools.partial(call.DiagnosticsStatusNotification, status))
                )
                await trio.sleep(0.2)

        return Reply(call_result.GetDiagnostics(name), after=upload)

    async def on_update_firmware(self, req: call.UpdateFirmware) -> Any:
        async def update() -> None:
            steps = (
                enums.FirmwareStatus.downloading,
                enums.FirmwareStatus.downloaded,
                enums.FirmwareStatus.installing,
                enums.FirmwareStatus.installed,
            )
            for status in steps:
                self._send(OutboxItem(functools.partial(call.FirmwareStatusNotification, status)))
                await trio.sleep(0.2)
            self.firmware_version = f"{self.config.firmware_version}+update"
            await self.reboot(enums.ResetType.hard)

        return Reply(call_result.UpdateFirmware(), after=update)

    # -- the security extension (state in ``self.security``) -------------------------------

    async def on_extended_trigger_message(self, req: call.ExtendedTriggerMessage) -> Any:
        what = str(req.requested_message)
        if what == "SignChargePointCertificate":

            async def sign() -> None:
                self._send(OutboxItem(self.security.new_csr))

            return Reply(
                call_result.ExtendedTriggerMessage(enums.TriggerMessageStatus.accepted),
                after=sign,
            )
        if what == "LogStatusNotification":

            async def log_status() -> None:
                self._send(
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
        result = self.security.certificate_signed(req.certificate_chain)
        if result.status != enums.CertificateSignedStatus.accepted:
            event = self.security.event(self.now(), "InvalidChargePointCertificate")
            self._send(OutboxItem(lambda: event))
        self.persist()
        return result

    async def on_install_certificate(self, req: call.InstallCertificate) -> Any:
        result = self.security.install(req)
        self.persist()
        return result

    async def on_get_installed_certificate_ids(self, req: call.GetInstalledCertificateIds) -> Any:
        return self.security.installed_ids(req)

    async def on_delete_certificate(self, req: call.DeleteCertificate) -> Any:
        result = self.security.delete(req)
        self.persist()
        return result

    async def on_signed_update_firmware(self, req: call.SignedUpdateFirmware) -> Any:
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
                self._send(
                    OutboxItem(
                        functools.partial(
                            call.SignedFirmwareStatusNotification,
                            enums.FirmwareStatus(status),
                            request_id,
                        )
                    )
                )
                await trio.sleep(0.2)
            self.firmware_version = f"{self.config.firmware_version}+signed"
            event = self.security.event(self.now(), "FirmwareUpdated")
            self._send(OutboxItem(lambda: event))
            await self.reboot(enums.ResetType.hard)

        return Reply(
            call_result.SignedUpdateFirmware(enums.UpdateFirmwareStatus.accepted), after=update
        )

    async def on_get_log(self, req: call.GetLog) -> Any:
        request_id = req.request_id
        name = f"{str(req.log_type).lower()}-{self.cp_id}-{self.clock():%Y%m%d%H%M%S}.log"

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                self._send(
                    OutboxItem(
                        functools.partial(
                            call.LogStatusNotification, enums.UploadLogStatus(status), request_id
                        )
                    )
                )
                await trio.sleep(0.2)

        return Reply(call_result.GetLog(enums.LogStatus.accepted, name), after=upload)
