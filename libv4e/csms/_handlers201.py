"""The answers to the calls an OCPP 2.0.1 charging station initiates: one
:class:`ChargerHandlers201` per 2.0.1 connection, beside the 1.6 :class:`ChargerHandlers`,
given the same parts of the central system (:class:`HandlerParts`) and writing into the
same books: a TransactionEvent is booked on the same ledger as a 1.6 transaction
(:func:`~libv4e.csms._sessions201.answer_transaction_event`).

The topology: a 2.0.1 StatusNotification's ``evseId`` is the registry's ``connector_id``
(``evseId`` 0, the station as a whole, is connector 0, as in 1.6): the EVSE is what a
driver plugs into, starts and stops on. Each of its connectors' last status is kept
(``ConnectorState.plugs``) and the EVSE's status is its most telling one
(:data:`~libv4e.csms._registry.EVSE_PRECEDENCE`).

A StatusNotification does not close a session: in 2.0.1 a transaction may start before
the cable is plugged in (``TxStartPoint`` Authorized) while its EVSE is still Available;
its TransactionEvent Ended closes it.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from ocpp.v16 import call as call16
from ocpp.v201 import call, call_result, datatypes, enums

from libv4e.csms._handlers import AnswerLog, HandlerParts, book_boot
from libv4e.csms._registry import BootInfo, evse_status, iso, parse_time, read_meter_values
from libv4e.csms._sessions201 import (
    NO_AUTHORIZATION,
    SESSION_STATUSES,
    answer_transaction_event,
    as_16_meter_values,
)
from libv4e.protocol._convert import to_json_payload
from libv4e.protocol._fields import field as _get
from libv4e.protocol._fields import text as _text
from libv4e.transport._connection import OcppConnection, Reply

log = logging.getLogger("libv4e.csms")


def version_blind_status(reported: str, *, in_session: bool, was: str | None) -> str:
    """A 2.0.1 ``connectorStatus`` in the 1.6 words the agent side reads: Occupied is
    Charging while a session runs on the EVSE, Finishing right after one (the cable still
    in), Preparing otherwise; the other statuses are the same words."""
    if reported != "Occupied":
        return reported
    if in_session:  # as the session's last charging state said, else Charging
        return was if was in SESSION_STATUSES else "Charging"
    if was in SESSION_STATUSES or was == "Finishing":
        return "Finishing"
    return "Preparing"


class ChargerHandlers201:
    """The answers to one OCPP 2.0.1 charger's calls."""

    def __init__(self, parts: HandlerParts, cp_id: str, conn: OcppConnection | None = None) -> None:
        self.parts, self.cp_id, self.conn = parts, cp_id, conn
        self._answers = AnswerLog(parts, cp_id, conn)

    async def on_boot_notification(
        self, msg: call.BootNotification
    ) -> call_result.BootNotification:
        station = msg.charging_station
        boot = BootInfo(
            vendor=station.vendor_name,
            model=station.model,
            serial_number=station.serial_number,
            firmware_version=station.firmware_version,
            reason=str(_text(msg.reason)),
        )
        accepted, interval, now = book_boot(self.parts, self.cp_id, boot)
        status = enums.RegistrationStatusEnumType.accepted
        if not accepted:
            status = enums.RegistrationStatusEnumType.rejected
        return call_result.BootNotification(iso(now), interval, status)

    async def on_heartbeat(self, msg: call.Heartbeat) -> call_result.Heartbeat:
        now = self.parts.clock()
        self.parts.registry.heartbeat(self.cp_id, now)
        return call_result.Heartbeat(iso(now))

    async def on_status_notification(
        self, msg: call.StatusNotification
    ) -> call_result.StatusNotification:
        csms = self.parts
        at = parse_time(msg.timestamp) or csms.clock()
        state = csms.registry.get(self.cp_id)
        known = None if state is None else state.connectors.get(msg.evse_id)
        plugs = {} if known is None else dict(known.plugs)
        plugs[msg.connector_id] = str(msg.connector_status)
        reported = evse_status(plugs)  # the EVSE: as its most telling connector
        status = version_blind_status(
            reported,
            in_session=csms.transactions.active_on(self.cp_id, msg.evse_id) is not None,
            was=None if known is None else known.status,
        )
        held = csms.registry.connector_status(
            self.cp_id, msg.evse_id, status, at, reported=reported
        )
        held.plugs = plugs
        csms.charger_changed(self.cp_id)
        return call_result.StatusNotification()

    async def on_authorize(self, msg: call.Authorize) -> call_result.Authorize:
        token = msg.id_token
        if str(token.type) == NO_AUTHORIZATION:
            status = enums.AuthorizationStatusEnumType.accepted
            return call_result.Authorize(datatypes.IdTokenInfoType(status))
        info = self.parts.auth.authorize(token.id_token, self.parts.clock())
        answer = datatypes.IdTokenInfoType(
            status=enums.AuthorizationStatusEnumType(str(info.status)),
            cache_expiry_date_time=info.expiry_date,
        )
        if info.parent_id_tag:
            answer.group_id_token = datatypes.IdTokenType(
                info.parent_id_tag, enums.IdTokenEnumType.central
            )
        return call_result.Authorize(answer)

    async def on_notify_report(self, msg: call.NotifyReport) -> call_result.NotifyReport:
        await self.parts.device_models.report(self.cp_id, msg.report_data)
        return call_result.NotifyReport()

    async def on_notify_event(self, msg: call.NotifyEvent) -> call_result.NotifyEvent:
        parts = self.parts
        await parts.device_models.event(self.cp_id, msg.event_data, msg.generated_at)
        for event in msg.event_data:  # a connector's Problem: its error code, as in 1.6
            component = _get(event, "component")
            evse = _get(_get(component, "evse"), "id")
            if _get(_get(event, "variable"), "name") != "Problem" or not isinstance(evse, int):
                continue
            problem = str(_get(event, "actual_value")).lower() == "true"
            code = str(_get(event, "tech_code") or "OtherError") if problem else None
            info = _get(event, "tech_info")
            if parts.registry.connector_problem(
                self.cp_id, evse, code, None if info is None else str(info)
            ):
                parts.charger_changed(self.cp_id)
        return call_result.NotifyEvent()

    async def on_firmware_status_notification(
        self, msg: call.FirmwareStatusNotification
    ) -> call_result.FirmwareStatusNotification:
        """The security extension's signed-firmware record when its ``requestId`` names
        that request, else the firmware book (as 1.6's): 2.0.1 reports signed and
        unsigned updates alike, each status moves the one it names."""
        status = str(_text(msg.status))
        security = self.parts.security
        if not await security.on_status201(self.cp_id, "firmware", status, msg.request_id):
            await self.parts.firmware_reported(self.cp_id, "firmware", status)
        return call_result.FirmwareStatusNotification()

    async def on_log_status_notification(
        self, msg: call.LogStatusNotification
    ) -> call_result.LogStatusNotification:
        """A log upload's progress: the security extension's log record when its
        ``requestId`` names that request, else the diagnostics book in 1.6 words
        (UploadFailure → UploadFailed)."""
        status = str(_text(msg.status))
        if await self.parts.security.on_status201(self.cp_id, "log", status, msg.request_id):
            return call_result.LogStatusNotification()  # a security log's, not diagnostics
        diagnostics = {"UploadFailure": "UploadFailed", "BadMessage": "UploadFailed"}
        reported = diagnostics.get(status, status)
        if reported in ("Idle", "Uploaded", "UploadFailed", "Uploading"):
            await self.parts.firmware_reported(self.cp_id, "diagnostics", reported)
        return call_result.LogStatusNotification()

    async def on_security_event_notification(
        self, msg: call.SecurityEventNotification
    ) -> call_result.SecurityEventNotification:
        await self.parts.security.on_security_event(self.cp_id, msg)  # the same fields
        return call_result.SecurityEventNotification()

    async def on_data_transfer(self, msg: call.DataTransfer) -> call_result.DataTransfer:
        """The vendor's handler (registered for 1.6 DataTransfer) answers: 2.0.1's
        ``data`` (any JSON) reaches it as text, JSON-encoded unless it is a string."""
        handler = self.parts.data_transfer(msg.vendor_id)
        if handler is None:
            return call_result.DataTransfer(enums.DataTransferStatusEnumType.unknown_vendor_id)
        data = msg.data
        text = data if data is None or isinstance(data, str) else json.dumps(data)
        answer = await handler(self.cp_id, call16.DataTransfer(msg.vendor_id, msg.message_id, text))
        return call_result.DataTransfer(
            enums.DataTransferStatusEnumType(str(answer.status)), data=answer.data
        )

    async def on_meter_values(self, msg: call.MeterValues) -> call_result.MeterValues:
        """Meter values outside a session: the EVSE's latest readings, and stored
        untied (as a 1.6 charger's MeterValues without a transactionId)."""
        parts = self.parts
        state = parts.registry.ensure(self.cp_id)
        read_meter_values(as_16_meter_values(msg.meter_value), state.connector(msg.evse_id).meter)
        values = [to_json_payload(mv) for mv in msg.meter_value]
        await parts.store.save_meter_values(self.cp_id, msg.evse_id, None, values)
        parts.meter_values_stored(self.cp_id, None)
        parts.charger_changed(self.cp_id)
        return call_result.MeterValues()

    async def on_transaction_event(self, msg: call.TransactionEvent) -> Reply:
        """One change on the ledger and one write (see ``answer_transaction_event``)."""
        result, answer, logged = await answer_transaction_event(
            self.parts,
            self.cp_id,
            msg,
            lambda result: self._answers.record("TransactionEvent", result),
        )
        return self._answers.reply(result, answer, logged)

    # -- the rest of what a 2.0.1 station may send: answered, and kept where we keep it ----

    async def on_reservation_status_update(
        self, msg: call.ReservationStatusUpdate
    ) -> call_result.ReservationStatusUpdate:
        """The station ended a reservation (Expired, Removed): the reservation book."""
        await self.parts.reservation_reported(
            self.cp_id, msg.reservation_id, str(_text(msg.reservation_update_status))
        )
        return call_result.ReservationStatusUpdate()

    async def on_notify_e_v_charging_needs(
        self, msg: call.NotifyEVChargingNeeds
    ) -> call_result.NotifyEVChargingNeeds:
        """ISO 15118 charging needs: Rejected — this CSMS computes no schedule for the EV
        (the station charges within the limits it has)."""
        return call_result.NotifyEVChargingNeeds(
            status=enums.NotifyEVChargingNeedsStatusEnumType.rejected
        )

    async def on_notify_e_v_charging_schedule(
        self, msg: call.NotifyEVChargingSchedule
    ) -> call_result.NotifyEVChargingSchedule:
        """The EV's own schedule within the station's limits: Accepted (nothing to check
        it against)."""
        return call_result.NotifyEVChargingSchedule(status=enums.GenericStatusEnumType.accepted)

    async def on_get15118_e_v_certificate(
        self, msg: call.Get15118EVCertificate
    ) -> call_result.Get15118EVCertificate:
        """Plug & Charge contract certificates: Failed — no ISO 15118 PKI here."""
        return call_result.Get15118EVCertificate(
            status=enums.Iso15118EVCertificateStatusEnumType.failed, exi_response=""
        )

    async def on_get_certificate_status(
        self, msg: call.GetCertificateStatus
    ) -> call_result.GetCertificateStatus:
        """OCSP for a V2G certificate: Failed — no OCSP responder here."""
        return call_result.GetCertificateStatus(status=enums.GetCertificateStatusEnumType.failed)

    async def on_cleared_charging_limit(
        self, msg: call.ClearedChargingLimit
    ) -> call_result.ClearedChargingLimit:
        return call_result.ClearedChargingLimit()

    async def on_notify_charging_limit(
        self, msg: call.NotifyChargingLimit
    ) -> call_result.NotifyChargingLimit:
        return call_result.NotifyChargingLimit()

    async def on_notify_customer_information(
        self, msg: call.NotifyCustomerInformation
    ) -> call_result.NotifyCustomerInformation:
        return call_result.NotifyCustomerInformation()

    async def on_notify_display_messages(
        self, msg: call.NotifyDisplayMessages
    ) -> call_result.NotifyDisplayMessages:
        return call_result.NotifyDisplayMessages()

    async def on_notify_monitoring_report(
        self, msg: call.NotifyMonitoringReport
    ) -> call_result.NotifyMonitoringReport:
        return call_result.NotifyMonitoringReport()

    async def on_publish_firmware_status_notification(
        self, msg: call.PublishFirmwareStatusNotification
    ) -> call_result.PublishFirmwareStatusNotification:
        return call_result.PublishFirmwareStatusNotification()

    async def on_report_charging_profiles(
        self, msg: call.ReportChargingProfiles
    ) -> call_result.ReportChargingProfiles:
        return call_result.ReportChargingProfiles()

    # -- the security extension ---------------------------------------------------------

    async def on_sign_certificate(self, msg: call.SignCertificate) -> Reply:
        """The 1.6 security extension's signing (``SecurityCenter.on_sign_certificate``):
        the CSMS's charger CA signs the CSR (its subject CN must be the station's id) and
        CertificateSigned follows the answer; Rejected without a CA or for another id.
        A V2GCertificate (ISO 15118) is Rejected: the CSMS signs charging-station
        certificates only. Without ``certificateType`` it is a charging-station one."""
        if str(_text(msg.certificate_type)) == "V2GCertificate":
            log.warning(
                "%s: SignCertificate refused: V2G certificates are not signed here", self.cp_id
            )
            return Reply(call_result.SignCertificate(enums.GenericStatusEnumType.rejected))
        reply = await self.parts.security.on_sign_certificate(
            self.cp_id, call16.SignCertificate(csr=msg.csr)
        )
        status = enums.GenericStatusEnumType(str(_text(reply.result.status)))
        return dataclasses.replace(reply, result=call_result.SignCertificate(status))
