"""The simulated charger as an OCPP 2.0.1 charging station: a dialect between the
charger's model, which thinks in OCPP 1.6 (its parts build 1.6 calls and answer 1.6
commands), and a 2.0.1 link. The model, its five fault scenarios and its state machines
stay the same whichever version the wire speaks.

Outbound (:class:`Station201Link.call`): each 1.6 call the charger makes becomes the
2.0.1 call that says the same, and the 2.0.1 answer is read back as the 1.6 answer the
charger expects. A session's StartTransaction / MeterValues / StopTransaction become
``TransactionEvent`` Started / Updated / Ended, with the station's own transaction id
(:func:`charger_transaction_id`), a ``seqNo`` counting from 0 per transaction, and
``offline: true`` on an event the charger queued while it was disconnected.

Inbound (:meth:`Station201.handlers`): each 2.0.1 command the central system sends is
answered by the charger's 1.6 handler of the same meaning (RequestStartTransaction →
RemoteStartTransaction, Reset Immediate → Hard (OnIdle → Soft once idle), Get/SetVariables →
Get/ChangeConfiguration through :data:`~libv4e.protocol._variables201.VARIABLES`, …), its
answer translated back. GetBaseReport is answered from the same configuration
(NotifyReport).

Topology: one connector per EVSE (``evseId`` = the model's connector id; ``connectorId``
1 inside it), as the central system's books assume.

The security extension: the model's 1.6 whitepaper handlers answer the 2.0.1 security
commands (InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
CertificateSigned; UpdateFirmware with a signature → SignedUpdateFirmware; GetLog
SecurityLog → the security GetLog; TriggerMessage SignChargingStationCertificate →
ExtendedTriggerMessage SignChargePointCertificate; SecurityCtrlr.BasicAuthPassword →
AuthorizationKey), and its SignCertificate, SignedFirmwareStatusNotification and
SecurityEventNotification go out as 2.0.1's (:meth:`Station201._security_outbound`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import trio
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as data16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as data201

from libv4e._errors import ErrorCode, Libv4eError, OcppError
from libv4e.protocol._fields import field as _get
from libv4e.protocol._fields import text as _text
from libv4e.protocol._time import iso, parse_time
from libv4e.protocol._variables201 import KEY_OF, VARIABLES, WRITE_ONLY
from libv4e.transport._connection import Handler, OcppConnection, Reply

__all__ = [
    "CONNECTOR_STATUS",
    "STOPPED_REASON",
    "Station201",
    "Station201Link",
    "charger_transaction_id",
]

log = logging.getLogger("libv4e.charger")

CONNECTOR_STATUS = {  # 1.6 ChargePointStatus → 2.0.1 ConnectorStatus
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
CHARGING_STATE = {  # 1.6 ChargePointStatus → 2.0.1 ChargingState (during a session)
    "Preparing": "EVConnected",
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "Finishing": "EVConnected",
}
STOPPED_REASON = {  # 1.6 Reason → 2.0.1 stoppedReason and the event's triggerReason
    "EmergencyStop": ("EmergencyStop", "AbnormalCondition"),
    "EVDisconnected": ("EVDisconnected", "EVCommunicationLost"),
    "HardReset": ("ImmediateReset", "ResetCommand"),
    "SoftReset": ("Reboot", "ResetCommand"),
    "Reboot": ("Reboot", "ResetCommand"),
    "Local": ("Local", "StopAuthorized"),
    "Remote": ("Remote", "RemoteStop"),
    "PowerLoss": ("PowerLoss", "AbnormalCondition"),
    "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    "UnlockCommand": ("Other", "UnlockCommand"),
    "Other": ("Other", "AbnormalCondition"),
}
_TRIGGERS_IN = {  # 2.0.1 MessageTrigger → 1.6 MessageTrigger
    "BootNotification": "BootNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "StatusNotification": "StatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "LogStatusNotification": "DiagnosticsStatusNotification",
}
_UNLOCK_OUT = {"Unlocked": "Unlocked", "UnlockFailed": "UnlockFailed"}
_PURPOSES_IN = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}
_CERTIFICATE_USE_IN = {  # 2.0.1 certificate use → the 1.6 CertificateUse the model keeps
    "CSMSRootCertificate": "CentralSystemRootCertificate",
    "ManufacturerRootCertificate": "ManufacturerRootCertificate",
}
_LOG_STATUS = {  # 1.6 DiagnosticsStatus → 2.0.1 UploadLogStatus
    "Idle": "Idle",
    "Uploaded": "Uploaded",
    "UploadFailed": "UploadFailure",
    "Uploading": "Uploading",
}


def charger_transaction_id(local_id: int) -> str:
    """The station's own id of a session the model numbers ``local_id``: its decimal
    text (so a session restored after a restart keeps its id without a table)."""
    return str(local_id)


class Station201:
    """The 2.0.1 face of one charger: the local session numbers, the per-transaction
    ``seqNo`` and the translation both ways. ``clock``: the charger's."""

    def __init__(self, cp_id: str, clock: Callable[[], dt.datetime]) -> None:
        self.cp_id = cp_id
        self.clock = clock
        start = int(clock().timestamp() * 1000) % (2**31 - 2**24)  # later boots: higher
        self._local_ids: Iterator[int] = itertools.count(max(start, 1))
        self._seq: dict[str, int] = {}
        self._fresh: set[str] = set()  # sessions started since this object was made
        self._starts: dict[tuple[Any, ...], int] = {}  # a resent start: the same session
        self._sent: dict[str, tuple[tuple[Any, ...], int]] = {}
        """Per transaction, its last event and the seqNo it went with: a resend (the
        outbox sends one message at a time, in order) repeats the last one only."""
        self._running: dict[int, str] = {}  # connector → the transaction id running on it
        self._idle = trio.Event()  # set when the last running session is forgotten
        self.reset_scheduled = False
        """An OnIdle reset waits for the sessions to end (one at a time: a repeat is the
        same reset, not another task waiting)."""
        self.follow_ups: list[Any] = []
        """2.0.1 calls that go right after the one just translated (a fault's NotifyEvent
        after its StatusNotification); :class:`Station201Link` sends them."""
        self._event_ids = itertools.count(1)
        self.log_request_id: int | None = None
        """The requestId of the last GetLog answered by the model's GetDiagnostics: its
        upload's LogStatusNotifications carry it."""

    # -- outbound ----------------------------------------------------------------------------

    def link(self, conn: OcppConnection) -> Station201Link:
        """``conn`` (a 2.0.1 connection) as the charger's parts use a connection."""
        return Station201Link(self, conn, self.clock())

    def next_seq(self, transaction_id: str, event: tuple[Any, ...]) -> int:
        """The ``seqNo`` of ``event`` (its kind and content) in a transaction: the next
        one, from 0, or the one it was sent with before (a resend after a lost answer is
        the same message). A session restored after a restart continues past any number
        it may have used (the central system flags the gap)."""
        last = self._sent.get(transaction_id)
        if last is not None and last[0] == event:
            return last[1]
        seq = self._seq.get(transaction_id)
        if seq is None:
            seq = 0 if transaction_id in self._fresh else 1_000_000
        self._seq[transaction_id] = seq + 1
        self._sent[transaction_id] = (event, seq)
        return seq

    def outbound(self, payload: Any, connected_at: dt.datetime) -> tuple[Any, Callable[[Any], Any]]:
        """(the 2.0.1 call, how its answer reads as the 1.6 answer) for a 1.6 call; a
        2.0.1 call goes as it is. None as the call: answered here, nothing sent."""
        if type(payload).__module__.startswith("ocpp.v201"):
            return payload, lambda answer: answer
        if isinstance(payload, call16.BootNotification):
            return (
                call201.BootNotification(
                    charging_station=data201.ChargingStationType(
                        model=payload.charge_point_model,
                        vendor_name=payload.charge_point_vendor,
                        serial_number=payload.charge_point_serial_number,
                        firmware_version=payload.firmware_version,
                    ),
                    reason="PowerUp",
                ),
                lambda a: result16.BootNotification(
                    current_time=_get(a, "current_time"),
                    interval=_get(a, "interval"),
                    status=_text(_get(a, "status")),
                ),
            )
        if isinstance(payload, call16.Heartbeat):
            return call201.Heartbeat(), lambda a: result16.Heartbeat(_get(a, "current_time"))
        if isinstance(payload, call16.StatusNotification):
            if not payload.connector_id:  # 2.0.1 reports EVSEs only
                return None, lambda _: result16.StatusNotification()
            code = str(_text(payload.error_code or "NoError"))
            if code != "NoError":  # 2.0.1 has no error fields: the problem is an event
                self.follow_ups.append(self._problem(payload, code))
            state = CHARGING_STATE.get(str(_text(payload.status)))
            tid = self._running.get(payload.connector_id)
            if state is not None and tid is not None:  # the session's charging state
                self.follow_ups.append(self._charging_state(tid, state, payload, connected_at))
            return (
                call201.StatusNotification(
                    timestamp=payload.timestamp or iso(self.clock()),
                    connector_status=CONNECTOR_STATUS.get(str(_text(payload.status)), "Faulted"),
                    evse_id=payload.connector_id,
                    connector_id=1,
                ),
                lambda _: result16.StatusNotification(),
            )
        if isinstance(payload, call16.Authorize):
            return (
                call201.Authorize(id_token=_token(payload.id_tag)),
                lambda a: result16.Authorize(_tag_info(_get(a, "id_token_info"))),
            )
        if isinstance(payload, call16.StartTransaction):
            return self._started(payload, connected_at)
        if isinstance(payload, call16.MeterValues):
            if payload.transaction_id is not None:
                return self._updated(payload, connected_at)
            return (
                call201.MeterValues(
                    evse_id=payload.connector_id, meter_value=_meter_values(payload.meter_value)
                ),
                lambda _: result16.MeterValues(),
            )
        if isinstance(payload, call16.StopTransaction):
            return self._ended(payload, connected_at)
        if isinstance(payload, call16.DataTransfer):
            return (
                call201.DataTransfer(
                    vendor_id=payload.vendor_id, message_id=payload.message_id, data=payload.data
                ),
                lambda a: result16.DataTransfer(_text(_get(a, "status")), data=_get(a, "data")),
            )
        if isinstance(payload, call16.FirmwareStatusNotification):
            status = str(_text(payload.status))
            status = {"Idle": "Idle", "InstallationFailed": "InstallationFailed"}.get(
                status, status
            )
            return (
                call201.FirmwareStatusNotification(status=status),
                lambda _: result16.FirmwareStatusNotification(),
            )
        if isinstance(payload, call16.DiagnosticsStatusNotification):
            status = _LOG_STATUS.get(str(_text(payload.status)), "Idle")
            return (
                call201.LogStatusNotification(
                    status=status, request_id=None if status == "Idle" else self.log_request_id
                ),
                lambda _: result16.DiagnosticsStatusNotification(),
            )
        security = self._security_outbound(payload)
        if security is not None:
            return security
        raise OcppError(ErrorCode.NOT_SUPPORTED, f"{type(payload).__name__} has no 2.0.1 form here")

    def _security_outbound(self, payload: Any) -> tuple[Any, Callable[[Any], Any]] | None:
        """The model's security-extension calls as 2.0.1's (None: not one of them):
        SignCertificate (a ChargingStationCertificate), SignedFirmwareStatusNotification
        → FirmwareStatusNotification with its requestId (the statuses are the same words),
        the security LogStatusNotification and SecurityEventNotification as they are."""
        if isinstance(payload, call16.SignCertificate):
            return (
                call201.SignCertificate(
                    csr=payload.csr, certificate_type="ChargingStationCertificate"
                ),
                lambda a: result16.SignCertificate(_text(_get(a, "status"))),
            )
        if isinstance(payload, call16.SignedFirmwareStatusNotification):
            return (
                call201.FirmwareStatusNotification(
                    status=_text(payload.status), request_id=payload.request_id
                ),
                lambda _: result16.SignedFirmwareStatusNotification(),
            )
        if isinstance(payload, call16.LogStatusNotification):
            return (
                call201.LogStatusNotification(
                    status=_text(payload.status), request_id=payload.request_id
                ),
                lambda _: result16.LogStatusNotification(),
            )
        if isinstance(payload, call16.SecurityEventNotification):
            return (
                call201.SecurityEventNotification(
                    type=payload.type, timestamp=payload.timestamp, tech_info=payload.tech_info
                ),
                lambda _: result16.SecurityEventNotification(),
            )
        return None

    def _charging_state(self, tid: str, state: str, payload: Any, connected_at: dt.datetime) -> Any:
        """TransactionEvent Updated, ChargingStateChanged: how the session charges now
        (Charging, SuspendedEV, SuspendedEVSE, EVConnected)."""
        at = payload.timestamp or iso(self.clock())
        return call201.TransactionEvent(
            event_type="Updated",
            timestamp=at,
            trigger_reason="ChargingStateChanged",
            seq_no=self.next_seq(tid, ("ChargingState", state, at)),
            transaction_info=data201.TransactionType(transaction_id=tid, charging_state=state),
            offline=_offline(at, connected_at),
            evse=data201.EVSEType(id=payload.connector_id, connector_id=1),
        )

    def _problem(self, payload: Any, code: str) -> Any:
        """A connector's fault as 2.0.1 reports it: NotifyEvent, variable Problem true on
        the connector, the 1.6 error code as ``techCode`` and its info as ``techInfo``."""
        return call201.NotifyEvent(
            generated_at=iso(self.clock()),
            seq_no=0,
            event_data=[
                data201.EventDataType(
                    event_id=next(self._event_ids),
                    timestamp=payload.timestamp or iso(self.clock()),
                    trigger="Delta",
                    actual_value="true",
                    event_notification_type="HardWiredNotification",
                    component=data201.ComponentType(
                        name="Connector",
                        evse=data201.EVSEType(id=payload.connector_id, connector_id=1),
                    ),
                    variable=data201.VariableType(name="Problem"),
                    tech_code=code[:50],
                    tech_info=None if payload.info is None else str(payload.info)[:500],
                )
            ],
        )

    def running(self) -> bool:
        """Whether a session runs on any EVSE."""
        return bool(self._running)

    async def wait_idle(self) -> None:
        """Until no session runs (the last one's Ended answered)."""
        while self._running:
            if self._idle.is_set():
                self._idle = trio.Event()
            await self._idle.wait()

    def new_session(self) -> int:
        """A local number for a session this station starts (see
        :func:`charger_transaction_id`)."""
        local = next(self._local_ids)
        self._fresh.add(charger_transaction_id(local))
        return local

    def _started(self, payload: Any, connected_at: dt.datetime) -> tuple[Any, Any]:
        start = (payload.connector_id, payload.id_tag, payload.meter_start, payload.timestamp)
        local = self._starts.get(start)
        if local is None:
            local = self._starts[start] = self.new_session()
        tid = charger_transaction_id(local)
        self._running[payload.connector_id] = tid
        register = _register(payload.timestamp, payload.meter_start, "Transaction.Begin")
        event = call201.TransactionEvent(
            event_type="Started",
            timestamp=payload.timestamp,
            trigger_reason="Authorized",
            seq_no=self.next_seq(tid, ("Started",)),
            transaction_info=data201.TransactionType(transaction_id=tid),
            meter_value=_meter_values([register]),
            offline=_offline(payload.timestamp, connected_at),
            reservation_id=payload.reservation_id,
            evse=data201.EVSEType(id=payload.connector_id, connector_id=1),
            id_token=_token(payload.id_tag),
        )

        def read(answer: Any) -> Any:
            info = _get(answer, "id_token_info")
            return result16.StartTransaction(
                transaction_id=local,
                id_tag_info=_tag_info(info if info is not None else {"status": "Accepted"}),
            )

        return event, read

    def _updated(self, payload: Any, connected_at: dt.datetime) -> tuple[Any, Any]:
        tid = charger_transaction_id(payload.transaction_id)
        values = _meter_values(payload.meter_value)
        at = values[-1].timestamp if values else iso(self.clock())
        event = call201.TransactionEvent(
            event_type="Updated",
            timestamp=at,
            trigger_reason="MeterValuePeriodic",
            seq_no=self.next_seq(tid, ("Updated", at)),
            transaction_info=data201.TransactionType(transaction_id=tid),
            meter_value=values or None,
            offline=_offline(at, connected_at),
            evse=data201.EVSEType(id=payload.connector_id, connector_id=1),
        )
        return event, lambda _: result16.MeterValues()

    def _ended(self, payload: Any, connected_at: dt.datetime) -> tuple[Any, Any]:
        tid = charger_transaction_id(payload.transaction_id)
        stopped, trigger = STOPPED_REASON.get(
            str(_text(payload.reason or "Local")), ("Other", "AbnormalCondition")
        )
        register = _register(payload.timestamp, payload.meter_stop, "Transaction.End")
        event = call201.TransactionEvent(
            event_type="Ended",
            timestamp=payload.timestamp,
            trigger_reason=trigger,
            seq_no=self.next_seq(tid, ("Ended",)),
            transaction_info=data201.TransactionType(transaction_id=tid, stopped_reason=stopped),
            meter_value=_meter_values([register]),
            offline=_offline(payload.timestamp, connected_at),
            id_token=None if payload.id_tag is None else _token(payload.id_tag),
        )

        def read(answer: Any) -> Any:
            self._forget(tid)
            info = _get(answer, "id_token_info")
            return result16.StopTransaction(None if info is None else _tag_info(info))

        return event, read

    def _forget(self, transaction_id: str) -> None:
        """A session ended and its Ended was answered: nothing of it is needed again."""
        for connector, tid in list(self._running.items()):
            if tid == transaction_id:
                del self._running[connector]
        if not self._running:
            self._idle.set()
        self._seq.pop(transaction_id, None)
        self._fresh.discard(transaction_id)
        self._sent.pop(transaction_id, None)
        for key in [
            k for k, v in self._starts.items() if charger_transaction_id(v) == transaction_id
        ]:
            del self._starts[key]

    # -- inbound -----------------------------------------------------------------------------

    def handlers(
        self, handlers16: Mapping[str, Handler], link: Callable[[], Any]
    ) -> Mapping[str, Handler]:
        """The 2.0.1 commands, each answered by the charger's 1.6 handler of the same
        meaning (``handlers16``, its ``on_<action>`` table); ``link()``: the present
        connection (GetBaseReport's NotifyReport goes through it)."""
        return _Handlers201(self, handlers16, link)


class Station201Link:
    """A 2.0.1 connection as the charger's parts use one: ``call`` takes and returns the
    1.6 objects; the rest is the connection's."""

    def __init__(self, station: Station201, conn: OcppConnection, connected_at: dt.datetime):
        self._station, self._conn, self._connected_at = station, conn, connected_at

    async def call(self, payload: Any, *, timeout: float) -> Any:
        station = self._station
        request, read = station.outbound(payload, self._connected_at)
        follow_ups, station.follow_ups = station.follow_ups, []
        result = None if request is None else await self._conn.call(request, timeout=timeout)
        for extra in follow_ups:  # after the call they complete, best effort
            try:
                await self._conn.call(extra, timeout=timeout)
            except Libv4eError as exc:
                log.info("%s: %s not delivered: %s", station.cp_id, type(extra).__name__, exc)
        return read(result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Handlers201(Mapping[str, Handler]):
    """The 2.0.1 handler table over a 1.6 one (looked up per call, as BoundHandlers)."""

    def __init__(
        self, station: Station201, handlers16: Mapping[str, Handler], link: Callable[[], Any]
    ) -> None:
        self._station, self._h, self._link = station, handlers16, link
        self._table: dict[str, Callable[[Any], Any]] = {
            "RequestStartTransaction": self._request_start,
            "RequestStopTransaction": self._request_stop,
            "Reset": self._reset,
            "ChangeAvailability": self._change_availability,
            "UnlockConnector": self._unlock,
            "TriggerMessage": self._trigger,
            "SetVariables": self._set_variables,
            "GetVariables": self._get_variables,
            "GetBaseReport": self._get_base_report,
            "DataTransfer": self._data_transfer,
            "ClearCache": self._clear_cache,
            "GetLocalListVersion": self._local_list_version,
            "SendLocalList": self._send_local_list,
            "ReserveNow": self._reserve_now,
            "CancelReservation": self._cancel_reservation,
            "ClearChargingProfile": self._clear_profile,
            "SetChargingProfile": self._set_profile,
            "GetCompositeSchedule": self._composite_schedule,
            "UpdateFirmware": self._update_firmware,
            "GetLog": self._get_log,
            # the security extension (the model's 1.6 whitepaper handlers)
            "InstallCertificate": self._install_certificate,
            "GetInstalledCertificateIds": self._installed_certificate_ids,
            "DeleteCertificate": self._delete_certificate,
            "CertificateSigned": self._certificate_signed,
        }

    def __getitem__(self, action: str) -> Handler:
        return self._table[action]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    async def _ask(self, action: str, request16: Any, back: Callable[[Any], Any]) -> Any:
        """The 1.6 handler's answer to ``request16``, translated by ``back`` (a Reply
        keeps its work after the answer)."""
        answer = await self._h[action](request16)
        if isinstance(answer, Reply):
            return dataclasses.replace(answer, result=back(answer.result))
        return back(answer)

    async def _request_start(self, req: Any) -> Any:
        tag = _get(req.id_token, "id_token")
        return await self._ask(
            "RemoteStartTransaction",
            call16.RemoteStartTransaction(id_tag=tag, connector_id=req.evse_id),
            lambda a: result201.RequestStartTransaction(status=_text(a.status)),
        )

    async def _request_stop(self, req: Any) -> Any:
        try:
            local = int(req.transaction_id)
        except ValueError:
            return result201.RequestStopTransaction(status="Rejected")
        return await self._ask(
            "RemoteStopTransaction",
            call16.RemoteStopTransaction(transaction_id=local),
            lambda a: result201.RequestStopTransaction(status=_text(a.status)),
        )

    async def _reset(self, req: Any) -> Any:
        """Immediate: the sessions stop (ImmediateReset) and the station restarts now (the
        model's Hard reset). OnIdle: the same once no session runs — now when idle, else
        answered Scheduled and done when the last session has ended (the model's Soft
        reset then)."""
        if str(_text(req.type)) == "Immediate":
            return await self._ask(
                "Reset",
                call16.Reset(type="Hard"),
                lambda a: result201.Reset(status=_text(a.status)),
            )
        if not self._station.running():
            return await self._ask(
                "Reset",
                call16.Reset(type="Soft"),
                lambda a: result201.Reset(status=_text(a.status)),
            )

        station = self._station
        if station.reset_scheduled:  # one is waiting already: the same reset, not another
            return result201.Reset(status="Scheduled")

        def unscheduled() -> None:
            station.reset_scheduled = False

        async def when_idle() -> None:
            try:
                await station.wait_idle()
                answer = await self._h["Reset"](call16.Reset(type="Soft"))
            finally:
                unscheduled()  # (also when the connection ends first: it is forgotten)
            if isinstance(answer, Reply) and answer.after is not None:
                await answer.after()

        station.reset_scheduled = True
        return Reply(result201.Reset(status="Scheduled"), after=when_idle, undelivered=unscheduled)

    async def _change_availability(self, req: Any) -> Any:
        evse = _get(req.evse, "id") or 0
        return await self._ask(
            "ChangeAvailability",
            call16.ChangeAvailability(connector_id=evse, type=_text(req.operational_status)),
            lambda a: result201.ChangeAvailability(status=_text(a.status)),
        )

    async def _unlock(self, req: Any) -> Any:
        return await self._ask(
            "UnlockConnector",
            call16.UnlockConnector(connector_id=req.evse_id),
            lambda a: result201.UnlockConnector(
                status=_UNLOCK_OUT.get(str(_text(a.status)), "UnknownConnector")
            ),
        )

    async def _trigger(self, req: Any) -> Any:
        if str(_text(req.requested_message)) == "SignChargingStationCertificate":
            return await self._sign_trigger(req)
        requested = _TRIGGERS_IN.get(str(_text(req.requested_message)))
        if requested is None:
            return result201.TriggerMessage(status="NotImplemented")
        return await self._ask(
            "TriggerMessage",
            call16.TriggerMessage(requested_message=requested, connector_id=_get(req.evse, "id")),
            lambda a: result201.TriggerMessage(status=_text(a.status)),
        )

    async def _set_variables(self, req: Any) -> Any:
        results = []
        afters = []  # a security key's reconnect (the model's Reply) runs after the answer
        for item in req.set_variable_data:
            component = _get(item, "component")
            variable = _get(item, "variable")
            key = KEY_OF.get((_get(component, "name"), _get(variable, "name")))
            status = "UnknownVariable"
            if key is not None:
                answer = await self._h["ChangeConfiguration"](
                    call16.ChangeConfiguration(key=key, value=_get(item, "attribute_value"))
                )
                if isinstance(answer, Reply):
                    if answer.after is not None:
                        afters.append(answer.after)
                    answer = answer.result
                status = {
                    "Accepted": "Accepted",
                    "RebootRequired": "RebootRequired",
                    "Rejected": "Rejected",
                }.get(str(_text(answer.status)), "UnknownVariable")
            results.append(
                data201.SetVariableResultType(
                    attribute_status=status, component=component, variable=variable
                )
            )
        result = result201.SetVariables(set_variable_result=results)
        if not afters:
            return result

        async def after() -> None:
            for work in afters:
                await work()

        return Reply(result, after=after)

    async def _configuration(self) -> dict[str, Any]:
        answer = await self._h["GetConfiguration"](call16.GetConfiguration())
        return {_get(kv, "key"): kv for kv in answer.configuration_key or []}

    async def _get_variables(self, req: Any) -> Any:
        known = await self._configuration()
        results = []
        for item in req.get_variable_data:
            component = _get(item, "component")
            variable = _get(item, "variable")
            key = KEY_OF.get((_get(component, "name"), _get(variable, "name")))
            entry = None if key is None else known.get(key)
            if key in WRITE_ONLY and entry is not None:  # never read back
                results.append(
                    data201.GetVariableResultType(
                        attribute_status="Rejected", component=component, variable=variable
                    )
                )
                continue
            results.append(
                data201.GetVariableResultType(
                    attribute_status="Accepted" if entry is not None else "UnknownVariable",
                    attribute_value=None if entry is None else _get(entry, "value"),
                    component=component,
                    variable=variable,
                )
            )
        return result201.GetVariables(get_variable_result=results)

    async def _get_base_report(self, req: Any) -> Any:
        known = await self._configuration()
        data = [
            data201.ReportDataType(
                component=data201.ComponentType(name=VARIABLES[key][0]),
                variable=data201.VariableType(name=VARIABLES[key][1]),
                variable_attribute=[
                    data201.VariableAttributeType(
                        value=_get(entry, "value"),
                        mutability="ReadOnly" if _get(entry, "readonly") else "ReadWrite",
                    )
                ],
            )
            for key, entry in known.items()
            if key in VARIABLES
        ]
        station = self._station
        link = self._link

        async def report() -> None:
            conn = link()
            if conn is not None:
                await conn.call(
                    call201.NotifyReport(
                        request_id=req.request_id,
                        generated_at=iso(station.clock()),
                        seq_no=0,
                        report_data=data or None,
                    ),
                    timeout=15,
                )

        return Reply(result201.GetBaseReport(status="Accepted"), after=report)

    async def _data_transfer(self, req: Any) -> Any:
        data = req.data if req.data is None or isinstance(req.data, str) else str(req.data)
        return await self._ask(
            "DataTransfer",
            call16.DataTransfer(vendor_id=req.vendor_id, message_id=req.message_id, data=data),
            lambda a: result201.DataTransfer(status=_text(a.status), data=_get(a, "data")),
        )

    async def _clear_cache(self, req: Any) -> Any:
        return await self._ask(
            "ClearCache", call16.ClearCache(), lambda a: result201.ClearCache(_text(a.status))
        )

    async def _local_list_version(self, req: Any) -> Any:
        return await self._ask(
            "GetLocalListVersion",
            call16.GetLocalListVersion(),
            lambda a: result201.GetLocalListVersion(version_number=a.list_version),
        )

    async def _send_local_list(self, req: Any) -> Any:
        entries = []
        for entry in req.local_authorization_list or []:
            info = _get(entry, "id_token_info")
            entries.append(
                data16.AuthorizationData(
                    id_tag=_get(_get(entry, "id_token"), "id_token"),
                    id_tag_info=None
                    if info is None
                    else data16.IdTagInfo(
                        status=_text(_get(info, "status")),
                        expiry_date=_get(info, "cache_expiry_date_time"),
                        parent_id_tag=_get(_get(info, "group_id_token"), "id_token"),
                    ),
                )
            )
        return await self._ask(
            "SendLocalList",
            call16.SendLocalList(
                list_version=req.version_number,
                update_type=_text(req.update_type),
                local_authorization_list=entries,
            ),
            lambda a: result201.SendLocalList(status=_text(a.status)),
        )

    async def _reserve_now(self, req: Any) -> Any:
        group = _get(req.group_id_token, "id_token")
        return await self._ask(
            "ReserveNow",
            call16.ReserveNow(
                connector_id=req.evse_id or 0,
                expiry_date=req.expiry_date_time,
                id_tag=_get(req.id_token, "id_token"),
                reservation_id=req.id,
                parent_id_tag=group,
            ),
            lambda a: result201.ReserveNow(status=_text(a.status)),
        )

    async def _cancel_reservation(self, req: Any) -> Any:
        return await self._ask(
            "CancelReservation",
            call16.CancelReservation(reservation_id=req.reservation_id),
            lambda a: result201.CancelReservation(status=_text(a.status)),
        )

    async def _update_firmware(self, req: Any) -> Any:
        firmware = req.firmware
        if _get(firmware, "signature") is not None:  # signed: the security extension's
            return await self._signed_update_firmware(req)
        return await self._ask(
            "UpdateFirmware",
            call16.UpdateFirmware(
                location=_get(firmware, "location"),
                retrieve_date=_get(firmware, "retrieve_date_time"),
                retries=req.retries,
                retry_interval=req.retry_interval,
            ),
            lambda _: result201.UpdateFirmware(status="Accepted"),
        )

    async def _get_log(self, req: Any) -> Any:
        if str(_text(req.log_type)) != "DiagnosticsLog":  # SecurityLog: the security GetLog
            return await self._security_log(req)
        log_ = req.log
        self._station.log_request_id = req.request_id
        return await self._ask(
            "GetDiagnostics",
            call16.GetDiagnostics(
                location=_get(log_, "remote_location"),
                retries=req.retries,
                retry_interval=req.retry_interval,
                start_time=_get(log_, "oldest_timestamp"),
                stop_time=_get(log_, "latest_timestamp"),
            ),
            lambda a: result201.GetLog(
                status="Accepted" if _get(a, "file_name") else "Rejected",
                filename=_get(a, "file_name"),
            ),
        )

    async def _clear_profile(self, req: Any) -> Any:
        criteria = req.charging_profile_criteria
        purpose = _text(_get(criteria, "charging_profile_purpose"))
        return await self._ask(
            "ClearChargingProfile",
            call16.ClearChargingProfile(
                id=req.charging_profile_id,
                connector_id=_get(criteria, "evse_id"),
                charging_profile_purpose=_PURPOSES_IN.get(purpose, purpose),
                stack_level=_get(criteria, "stack_level"),
            ),
            lambda a: result201.ClearChargingProfile(status=_text(a.status)),
        )

    async def _set_profile(self, req: Any) -> Any:
        """The model keeps 1.6 profiles: the first schedule of the 2.0.1 profile (a
        profile with several schedules, for ISO 15118, is Rejected, as is one of
        ChargingStationExternalConstraints, which is not the central system's to set), a
        TxProfile naming one of this station's transaction ids."""
        profile = req.charging_profile
        schedules = _get(profile, "charging_schedule") or []
        purpose = str(_text(_get(profile, "charging_profile_purpose")))
        tx_id = _get(profile, "transaction_id")
        local: int | None = None
        if tx_id is not None:
            try:
                local = int(tx_id)
            except ValueError:
                return result201.SetChargingProfile(status="Rejected")
        if len(schedules) != 1 or purpose == "ChargingStationExternalConstraints":
            return result201.SetChargingProfile(status="Rejected")
        schedule = schedules[0]
        periods = [
            data16.ChargingSchedulePeriod(
                start_period=_get(p, "start_period"),
                limit=_get(p, "limit"),
                number_phases=_get(p, "number_phases"),
            )
            for p in _get(schedule, "charging_schedule_period") or []
        ]
        return await self._ask(
            "SetChargingProfile",
            call16.SetChargingProfile(
                connector_id=req.evse_id,
                cs_charging_profiles=data16.ChargingProfile(
                    charging_profile_id=_get(profile, "id"),
                    stack_level=_get(profile, "stack_level"),
                    charging_profile_purpose=_PURPOSES_IN.get(purpose, purpose),
                    charging_profile_kind=_text(_get(profile, "charging_profile_kind")),
                    charging_schedule=data16.ChargingSchedule(
                        charging_rate_unit=_text(_get(schedule, "charging_rate_unit")),
                        charging_schedule_period=periods,
                        duration=_get(schedule, "duration"),
                        start_schedule=_get(schedule, "start_schedule"),
                        min_charging_rate=_get(schedule, "min_charging_rate"),
                    ),
                    transaction_id=local,
                    recurrency_kind=_text(_get(profile, "recurrency_kind")),
                    valid_from=_get(profile, "valid_from"),
                    valid_to=_get(profile, "valid_to"),
                ),
            ),
            lambda a: result201.SetChargingProfile(status=_text(a.status)),
        )

    async def _composite_schedule(self, req: Any) -> Any:
        def back(a: Any) -> Any:
            schedule = _get(a, "charging_schedule")
            if str(_text(a.status)) != "Accepted" or schedule is None:
                return result201.GetCompositeSchedule(status="Rejected")
            start = _get(a, "schedule_start") or _get(schedule, "start_schedule")
            return result201.GetCompositeSchedule(
                status="Accepted",
                schedule=data201.CompositeScheduleType(
                    evse_id=req.evse_id,
                    duration=req.duration,
                    schedule_start=start if start is not None else iso(self._station.clock()),
                    charging_rate_unit=_text(_get(schedule, "charging_rate_unit")),
                    charging_schedule_period=[
                        data201.ChargingSchedulePeriodType(
                            start_period=_get(p, "start_period"),
                            limit=_get(p, "limit"),
                            number_phases=_get(p, "number_phases"),
                        )
                        for p in _get(schedule, "charging_schedule_period") or []
                    ],
                ),
            )

        return await self._ask(
            "GetCompositeSchedule",
            call16.GetCompositeSchedule(
                connector_id=req.evse_id,
                duration=req.duration,
                charging_rate_unit=_text(req.charging_rate_unit),
            ),
            back,
        )

    # -- the security extension: the model's 1.6 whitepaper handlers -----------------------

    async def _install_certificate(self, req: Any) -> Any:
        use = _CERTIFICATE_USE_IN.get(str(_text(req.certificate_type)))
        if use is None:  # V2G / MO roots: the model keeps the 1.6 uses only
            return result201.InstallCertificate(status="Rejected")
        return await self._ask(
            "InstallCertificate",
            call16.InstallCertificate(certificate_type=use, certificate=req.certificate),
            lambda a: result201.InstallCertificate(status=_text(a.status)),
        )

    async def _installed_certificate_ids(self, req: Any) -> Any:
        """Each type asked (every type the model keeps when none is) is the model's
        GetInstalledCertificateIds of the 1.6 use; one chain per certificate."""
        asked = [str(_text(t)) for t in req.certificate_type or []] or list(_CERTIFICATE_USE_IN)
        chains = []
        for use in asked:
            mapped = _CERTIFICATE_USE_IN.get(use)
            if mapped is None:
                continue
            answer = await self._h["GetInstalledCertificateIds"](
                call16.GetInstalledCertificateIds(certificate_type=mapped)
            )
            chains += [
                data201.CertificateHashDataChainType(
                    certificate_type=use,
                    certificate_hash_data=data201.CertificateHashDataType(
                        hash_algorithm=_text(_get(h, "hash_algorithm")),
                        issuer_name_hash=_get(h, "issuer_name_hash"),
                        issuer_key_hash=_get(h, "issuer_key_hash"),
                        serial_number=_get(h, "serial_number"),
                    ),
                )
                for h in _get(answer, "certificate_hash_data") or []
            ]
        if not chains:
            return result201.GetInstalledCertificateIds(status="NotFound")
        return result201.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=chains
        )

    async def _delete_certificate(self, req: Any) -> Any:
        hashed = req.certificate_hash_data
        return await self._ask(
            "DeleteCertificate",
            call16.DeleteCertificate(
                certificate_hash_data=data16.CertificateHashData(
                    hash_algorithm=_text(_get(hashed, "hash_algorithm")),
                    issuer_name_hash=_get(hashed, "issuer_name_hash"),
                    issuer_key_hash=_get(hashed, "issuer_key_hash"),
                    serial_number=_get(hashed, "serial_number"),
                )
            ),
            lambda a: result201.DeleteCertificate(status=_text(a.status)),
        )

    async def _certificate_signed(self, req: Any) -> Any:
        if str(_text(req.certificate_type)) == "V2GCertificate":  # the model has no V2G key
            return result201.CertificateSigned(status="Rejected")
        return await self._ask(
            "CertificateSigned",
            call16.CertificateSigned(certificate_chain=req.certificate_chain),
            lambda a: result201.CertificateSigned(status=_text(a.status)),
        )

    async def _sign_trigger(self, req: Any) -> Any:
        """TriggerMessage SignChargingStationCertificate: the model's
        ExtendedTriggerMessage SignChargePointCertificate (a new key, SignCertificate)."""
        return await self._ask(
            "ExtendedTriggerMessage",
            call16.ExtendedTriggerMessage(requested_message="SignChargePointCertificate"),
            lambda a: result201.TriggerMessage(status=_text(a.status)),
        )

    async def _signed_update_firmware(self, req: Any) -> Any:
        """UpdateFirmware with a signature: the model's SignedUpdateFirmware (its
        statuses go out as FirmwareStatusNotification with this requestId)."""
        firmware = req.firmware
        return await self._ask(
            "SignedUpdateFirmware",
            call16.SignedUpdateFirmware(
                request_id=req.request_id,
                firmware=data16.Firmware(
                    location=_get(firmware, "location"),
                    retrieve_date_time=_get(firmware, "retrieve_date_time"),
                    install_date_time=_get(firmware, "install_date_time"),
                    signing_certificate=_get(firmware, "signing_certificate") or "",
                    signature=_get(firmware, "signature"),
                ),
                retries=req.retries,
                retry_interval=req.retry_interval,
            ),
            lambda a: result201.UpdateFirmware(status=_text(a.status)),
        )

    async def _security_log(self, req: Any) -> Any:
        """GetLog SecurityLog: the model's security GetLog (its LogStatusNotifications
        carry this requestId)."""
        parameters = req.log
        return await self._ask(
            "GetLog",
            call16.GetLog(
                log=data16.LogParameters(
                    remote_location=_get(parameters, "remote_location"),
                    oldest_timestamp=_get(parameters, "oldest_timestamp"),
                    latest_timestamp=_get(parameters, "latest_timestamp"),
                ),
                log_type=_text(req.log_type),
                request_id=req.request_id,
                retries=req.retries,
                retry_interval=req.retry_interval,
            ),
            lambda a: result201.GetLog(status=_text(a.status), filename=_get(a, "filename")),
        )


def _register(timestamp: Any, wh: int, context: str) -> data16.MeterValue:
    """A session's energy register at its start or end, as the model's meter value."""
    return data16.MeterValue(
        timestamp=timestamp,
        sampled_value=[
            data16.SampledValue(
                value=str(wh),
                measurand="Energy.Active.Import.Register",
                unit="Wh",
                context=context,
            )
        ],
    )


def _meter_values(values: Any) -> list[data201.MeterValueType]:
    """1.6 meter values as 2.0.1's: the text value as a number, ``unit`` as
    ``unitOfMeasure``; samples that are not numbers are left out."""
    out = []
    for mv in values or []:
        sampled = []
        for sv in _get(mv, "sampled_value") or []:
            try:
                value = float(_get(sv, "value"))
            except (TypeError, ValueError):
                continue
            unit = _text(_get(sv, "unit"))
            sampled.append(
                data201.SampledValueType(
                    value=value,
                    context=_text(_get(sv, "context")),
                    measurand=_text(_get(sv, "measurand")),
                    phase=_text(_get(sv, "phase")),
                    location=_text(_get(sv, "location")),
                    unit_of_measure=None if unit is None else data201.UnitOfMeasureType(unit=unit),
                )
            )
        if sampled:
            out.append(
                data201.MeterValueType(timestamp=_get(mv, "timestamp"), sampled_value=sampled)
            )
    return out


def _offline(timestamp: str | None, connected_at: dt.datetime) -> bool | None:
    """True for an event that happened before this connection opened (it was queued)."""
    at = parse_time(timestamp)
    return True if at is not None and at < connected_at else None


def _token(id_tag: str) -> data201.IdTokenType:
    return data201.IdTokenType(id_token=id_tag, type="ISO14443")


def _tag_info(info: Any) -> data16.IdTagInfo:
    status = str(_text(_get(info, "status")))
    if status not in ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"):
        status = "Invalid"  # 2.0.1's NoCredit, NotAtThisLocation…: not accepted
    return data16.IdTagInfo(status=status, expiry_date=_get(info, "cache_expiry_date_time"))
