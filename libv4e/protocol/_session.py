"""The sans-IO OCPP-J session (1.6 or 2.0.1): frames in, events out; calls in, frames out.

No sockets, no clock, no trio. :class:`OcppSession` keeps the state of one OCPP-J link
for either role: the one outstanding outgoing call, the inbound calls still to answer,
validation of every payload, and the CallError each kind of bad input deserves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import Any

from libv4e._errors import ErrorCode, LocalProtocolError, OcppError, StoreError
from libv4e.protocol import _bounds as _bounds
from libv4e.protocol import _validation as _validation
from libv4e.protocol._convert import (
    CATALOGUES,
    action_of,
    from_json_payload,
    to_json_payload,
    version_of,
)
from libv4e.protocol._validation import STRICT, ValidationPolicy
from libv4e.protocol._version import OcppVersion

log = logging.getLogger("libv4e.session")


def peer_text(value: object, limit: int = 80) -> str:
    """A string a peer chose, fit for a log line: at most ``limit`` characters, quoted and
    escaped (a newline in an action name or unique id cannot forge a log line)."""
    text = str(value)
    clipped = text[:limit]
    quoted = json.dumps(clipped)
    return quoted + "…" if len(text) > limit else quoted


def worth_logging(count: int) -> bool:
    """Whether the ``count``-th repeat of a peer-caused event is logged: the first five,
    then the 8th, 16th, 32nd… (a flood writes a few dozen lines, not one per frame)."""
    return count <= 5 or count & (count - 1) == 0


class MessageType(IntEnum):
    """An OCPP-J frame's MessageTypeId (its first element)."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


CALL, CALLRESULT, CALLERROR = MessageType.CALL, MessageType.CALLRESULT, MessageType.CALLERROR
MESSAGE_KINDS: dict[int, str] = {CALL: "call", CALLRESULT: "result", CALLERROR: "error"}
"""The MessageTypeIds of OCPP-J as short names (for logs, metrics and the dashboard)."""
MAX_UNIQUE_ID_LENGTH = 36
UNREADABLE_FRAMES_BEFORE_CLOSE = 5


class Role(StrEnum):
    """The two ends of an OCPP link (2.0.1 calls them the CSMS and the Charging
    Station)."""

    CENTRAL_SYSTEM = "CentralSystem"
    CHARGE_POINT = "ChargePoint"

    @property
    def peer(self) -> Role:
        """The role at the other end."""
        return Role.CHARGE_POINT if self is Role.CENTRAL_SYSTEM else Role.CENTRAL_SYSTEM


CHARGE_POINT_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
)
"""Actions a charge point may originate in OCPP 1.6 (DataTransfer goes both ways)."""

CHARGING_STATION_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)
"""Actions a charging station may originate in OCPP 2.0.1 (DataTransfer goes both ways)."""

_ORIGINATED_BY_CHARGER = {
    OcppVersion.V16: CHARGE_POINT_ACTIONS,
    OcppVersion.V201: CHARGING_STATION_ACTIONS,
}


def may_originate(role: Role, action: str, version: OcppVersion = OcppVersion.V16) -> bool:
    """Whether ``role`` is allowed to send a CALL for ``action`` in ``version``."""
    if action not in CATALOGUES[version].calls:
        return False
    if action == "DataTransfer":
        return True
    return (action in _ORIGINATED_BY_CHARGER[version]) == (role is Role.CHARGE_POINT)


# -- events -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CallReceived:
    """The peer sent a valid CALL; answer it with :meth:`OcppSession.send_result` or
    :meth:`OcppSession.send_error`."""

    unique_id: str
    action: str
    payload: Any  # an ocpp.v16.call / ocpp.v201.call dataclass
    raw: dict[str, Any]
    repairs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class CallResultReceived:
    """The peer answered our outstanding call."""

    unique_id: str
    action: str
    payload: Any  # an ocpp.v16.call_result / ocpp.v201.call_result dataclass
    raw: dict[str, Any]
    repairs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class CallErrorReceived:
    """The peer answered our outstanding call with a CALLERROR, or its answer was invalid
    (then ``local`` is true and the code says what was wrong with it)."""

    unique_id: str
    action: str
    code: str
    description: str
    details: dict[str, Any]
    local: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """A frame to send, with what it carries (for logs)."""

    text: str
    message_type: MessageType
    unique_id: str
    action: str | None
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class CallRejected:
    """An inbound CALL was refused; ``reply`` is the CALLERROR frame to send back."""

    unique_id: str
    action: str | None
    error: OcppError
    reply: Outgoing


@dataclasses.dataclass(frozen=True, slots=True)
class FrameDropped:
    """An inbound frame that cannot be answered (OCPP-J never answers a result, and an
    unreadable unique id cannot be answered). ``close`` asks the transport to close the
    connection because the peer keeps sending garbage."""

    reason: str
    text: str
    close: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class LateAnswerReceived:
    """An answer to a call we had given up on (:meth:`OcppSession.abandon_call`): kept
    for the record (the caller already saw a timeout), never handed to a waiting call."""

    unique_id: str
    action: str
    message_type: MessageType  # CALLRESULT or CALLERROR
    raw: dict[str, Any]


Event = (
    CallReceived
    | CallResultReceived
    | CallErrorReceived
    | CallRejected
    | FrameDropped
    | LateAnswerReceived
)

ABANDONED_REMEMBERED = 16
"""How many abandoned calls a session remembers to recognise their late answers."""


@dataclasses.dataclass(frozen=True, slots=True)
class PendingCall:
    """The call we sent and await an answer to."""

    unique_id: str
    action: str


@dataclasses.dataclass(frozen=True, slots=True)
class SessionStatistics:
    """Counters of one session (see :meth:`OcppSession.statistics`)."""

    calls_sent: int
    calls_received: int
    calls_rejected: int
    frames_dropped: int
    pending_call: PendingCall | None
    inbound_pending: int


_ID_RE = re.compile(r'^\s*\[\s*2\s*,\s*"((?:[^"\\]|\\.){1,36})"')


def _new_id() -> str:
    return str(uuid.uuid4())


class OcppSession:
    """The OCPP-J state of one connection, for ``role``'s end of it, in ``version``.

    The version decides the message catalogue (``ocpp.v16`` or ``ocpp.v201``
    dataclasses), the schemas payloads are checked against, and how CallError codes are
    spelled (:meth:`OcppVersion.wire_error`, applied to every CallError the session
    frames or reports).

    Feed it every received text frame with :meth:`receive`; it returns one event. Produce
    outgoing frames with :meth:`send_call`, :meth:`send_result` and :meth:`send_error`.
    OCPP-J allows one outstanding CALL per direction: :meth:`send_call` raises
    :class:`LocalProtocolError` while one is pending (the I/O layer queues callers).
    """

    def __init__(
        self,
        role: Role,
        *,
        policy: ValidationPolicy = STRICT,
        new_id: Callable[[], str] = _new_id,
        version: OcppVersion = OcppVersion.V16,
    ) -> None:
        _validation.warm_up(version)
        self.version = version
        self._catalogue = CATALOGUES[version]
        self.role = role
        self.policy = policy
        self._new_id = new_id
        self._pending: PendingCall | None = None
        self._abandoned: dict[str, str] = {}  # unique id -> action, oldest first
        self._inbound: dict[str, str] = {}  # unique id -> action of calls to answer
        self._unreadable_streak = 0
        self._calls_sent = self._calls_received = self._rejected = self._dropped = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def pending_call(self) -> PendingCall | None:
        """The outstanding outgoing call, if any."""
        return self._pending

    def statistics(self) -> SessionStatistics:
        """A snapshot of this session's counters."""
        return SessionStatistics(
            calls_sent=self._calls_sent,
            calls_received=self._calls_received,
            calls_rejected=self._rejected,
            frames_dropped=self._dropped,
            pending_call=self._pending,
            inbound_pending=len(self._inbound),
        )

    # -- outgoing ------------------------------------------------------------------------

    def send_call(self, payload: Any) -> Outgoing:
        """Start a call with a ``call`` dataclass of the session's version; return the
        frame to send.

        Raises :class:`LocalProtocolError` if a call is already outstanding, if our role
        may not send this action, or if the payload breaks the schema.
        """
        action = action_of(payload)
        if self._catalogue.calls.get(action) is not type(payload):
            other = version_of(payload)
            if other is not self.version and CATALOGUES[other].calls.get(action) is type(payload):
                raise LocalProtocolError(
                    f"{action} is an OCPP {other.label} message; this link speaks OCPP "
                    f"{self.version.label}"
                )
            raise LocalProtocolError(f"{type(payload).__qualname__} is not a call payload")
        if self._pending is not None:
            raise LocalProtocolError(
                f"cannot send {action}: {self._pending.action} is still outstanding"
            )
        if not may_originate(self.role, action, self.version):
            raise LocalProtocolError(f"a {self.role.value} may not send {action}")
        data = self._checked_outbound("call", action, payload)
        pending = PendingCall(self._new_id(), action)
        self._pending = pending
        self._calls_sent += 1
        return Outgoing(
            _dumps([CALL, pending.unique_id, action, data]), CALL, pending.unique_id, action, data
        )

    def abandon_call(self) -> PendingCall | None:
        """Give up on the outstanding call (it timed out); a late answer to it comes back
        as :class:`LateAnswerReceived`."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._abandoned[pending.unique_id] = pending.action
            if len(self._abandoned) > ABANDONED_REMEMBERED:
                del self._abandoned[next(iter(self._abandoned))]
        return pending

    def send_result(self, unique_id: str, payload: Any) -> Outgoing:
        """Answer the inbound call ``unique_id`` with a ``call_result`` payload of the
        session's version.

        Raises :class:`LocalProtocolError` if no such call is waiting or the payload does
        not fit the call's action; the call then still waits for an answer.
        """
        action = self._inbound.get(unique_id)
        if action is None:
            raise LocalProtocolError(f"no inbound call {unique_id!r} to answer")
        if self._catalogue.results.get(action) is not type(payload):
            raise LocalProtocolError(f"{type(payload).__qualname__} does not answer {action}")
        data = self._checked_outbound("result", action, payload)
        del self._inbound[unique_id]
        return Outgoing(_dumps([CALLRESULT, unique_id, data]), CALLRESULT, unique_id, action, data)

    def send_error(
        self,
        unique_id: str,
        code: ErrorCode | str,
        description: str = "",
        details: dict[str, Any] | None = None,
    ) -> Outgoing:
        """Answer the inbound call ``unique_id`` with a CALLERROR."""
        action = self._inbound.pop(unique_id, None)
        if action is None:
            raise LocalProtocolError(f"no inbound call {unique_id!r} to answer")
        error = self.version.wire_error(OcppError(code, description or None, details))
        return _error_frame(unique_id, action, error)

    def send_failure(self, unique_id: str, exc: BaseException) -> Outgoing:
        """Answer ``unique_id`` for a handler that raised ``exc``.

        An :class:`OcppError` goes out as its own code; a :class:`StoreError` as
        ``InternalError`` saying the call could not be stored (the charger retries it);
        anything else as ``InternalError`` with the generic description, so no internals
        leak. This is the one place a failure becomes a CALLERROR.
        """
        if isinstance(exc, OcppError):
            return self.send_error(unique_id, exc.code, exc.description, exc.details)
        if isinstance(exc, StoreError):
            return self.send_error(
                unique_id, ErrorCode.INTERNAL_ERROR, "the central system could not store this"
            )
        return self.send_error(unique_id, ErrorCode.INTERNAL_ERROR)

    def _checked_outbound(self, kind: _validation.Kind, action: str, payload: Any) -> Any:
        data = to_json_payload(payload)
        if self.policy.validate:
            try:
                _validation.validate(kind, action, data, self.version)
            except OcppError as exc:
                raise LocalProtocolError(f"invalid outgoing payload: {exc.description}") from exc
        return data

    # -- incoming ------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Event:
        """Take one received websocket message and return what it means."""
        if isinstance(text, bytes):
            return self._unreadable("binary frame (OCPP-J uses text frames)", repr(text[:200]))
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            return self._unreadable("not valid JSON", text)
        if not isinstance(frame, list) or not frame:
            return self._unreadable("not an OCPP-J frame (a JSON array)", text)
        kind = frame[0]
        unique_id = frame[1] if len(frame) > 1 else None
        if not isinstance(unique_id, str) or isinstance(kind, bool) or kind not in (2, 3, 4):
            if isinstance(unique_id, str) and not isinstance(kind, bool | list | dict):
                return self._reject(
                    unique_id,
                    None,
                    OcppError(
                        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"unknown MessageTypeId {kind!r}"
                    ),
                )
            return self._unreadable("no readable MessageTypeId and UniqueId", text)
        self._unreadable_streak = 0
        if kind == CALL:
            return self._receive_call(frame, unique_id)
        return self._receive_answer(frame, unique_id, text)

    def _unreadable(self, reason: str, text: str) -> Event:
        match = _ID_RE.match(text)
        if match:  # a CALL whose unique id we can still read: it gets an answer
            self._unreadable_streak = 0
            unique_id = json.loads(f'"{match.group(1)}"')
            return self._reject(
                unique_id, None, OcppError(ErrorCode.RPC_FRAMEWORK_ERROR, f"frame is {reason}")
            )
        self._unreadable_streak += 1
        self._dropped += 1
        if worth_logging(self._dropped):
            log.warning(
                "dropped unreadable frame (%s): %s (%d on this connection)",
                reason,
                peer_text(text, 200),
                self._dropped,
            )
        return FrameDropped(
            reason, text, close=self._unreadable_streak >= UNREADABLE_FRAMES_BEFORE_CLOSE
        )

    def _reject(self, unique_id: str, action: str | None, error: OcppError) -> CallRejected:
        error = self.version.wire_error(error)
        self._rejected += 1
        if worth_logging(self._rejected):
            log.info(
                "rejected call %s %s: %s %s (%d on this connection)",
                peer_text(unique_id),
                peer_text(action),
                error.code,
                peer_text(error.description, 200),
                self._rejected,
            )
        return CallRejected(unique_id, action, error, _error_frame(unique_id, action, error))

    def _receive_call(self, frame: list[Any], unique_id: str) -> Event:
        if len(frame) < 4:
            return self._reject(
                unique_id,
                None,
                OcppError(ErrorCode.PROTOCOL_ERROR, "CALL needs [2, uniqueId, action, payload]"),
            )
        action, payload = frame[2], frame[3]
        if len(frame) > 4 or not isinstance(action, str):
            return self._reject(
                unique_id,
                None,
                OcppError(ErrorCode.RPC_FRAMEWORK_ERROR, "CALL is [2, uniqueId, action, payload]"),
            )
        if len(unique_id) > MAX_UNIQUE_ID_LENGTH or not unique_id:
            return self._reject(
                unique_id,
                action,
                OcppError(ErrorCode.FORMATION_VIOLATION, "UniqueId must be 1 to 36 characters"),
            )
        if unique_id in self._inbound:
            return self._reject(
                unique_id,
                action,
                OcppError(
                    ErrorCode.FORMATION_VIOLATION,
                    "UniqueId repeats a call that is still being answered",
                ),
            )
        if action not in self._catalogue.calls:
            return self._reject(
                unique_id, action, OcppError(ErrorCode.NOT_IMPLEMENTED, f"Unknown action {action}")
            )
        if not may_originate(self.role.peer, action, self.version):
            return self._reject(
                unique_id,
                action,
                OcppError(
                    ErrorCode.NOT_SUPPORTED,
                    f"{action} is not sent by a {self.role.peer.value}",
                ),
            )
        try:
            data, repairs = self._checked_inbound("call", action, payload)
            # always, also without schema validation: the books and the store cannot hold
            # out-of-range numbers, whatever the policy trusts
            _bounds.check("call", action, data, self.version)
            typed = from_json_payload(self._catalogue.calls[action], data)
        except OcppError as exc:
            return self._reject(unique_id, action, exc)
        self._inbound[unique_id] = action
        self._calls_received += 1
        return CallReceived(unique_id, action, typed, data, tuple(repairs))

    def _receive_answer(self, frame: list[Any], unique_id: str, text: str) -> Event:
        pending = self._pending
        if pending is None or pending.unique_id != unique_id:
            late = self._abandoned.pop(unique_id, None)
            if late is not None:
                if frame[0] == CALLERROR:
                    raw = {"errorCode": frame[2] if len(frame) > 2 else None}
                    if len(frame) > 3:
                        raw["errorDescription"] = frame[3]
                    return LateAnswerReceived(unique_id, late, CALLERROR, raw)
                payload = frame[2] if len(frame) > 2 and isinstance(frame[2], dict) else {}
                return LateAnswerReceived(unique_id, late, CALLRESULT, payload)
            self._dropped += 1
            log.warning("dropped answer to no outstanding call: %s", peer_text(text, 200))
            return FrameDropped("answer matches no outstanding call", text)
        self._pending = None
        if frame[0] == CALLERROR:
            if len(frame) < 4 or not isinstance(frame[2], str):
                return self._bad_answer(pending, "malformed CALLERROR")
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            description = frame[3] if isinstance(frame[3], str) else str(frame[3])
            return CallErrorReceived(unique_id, pending.action, frame[2], description, details)
        if len(frame) != 3:
            return self._bad_answer(pending, "CALLRESULT is [3, uniqueId, payload]")
        try:
            data, repairs = self._checked_inbound("result", pending.action, frame[2])
            typed = from_json_payload(self._catalogue.results[pending.action], data)
        except OcppError as exc:
            error = self.version.wire_error(exc)
            log.warning("invalid %s result: %s", pending.action, peer_text(error.description, 200))
            return CallErrorReceived(
                unique_id, pending.action, error.code, error.description, error.details, local=True
            )
        return CallResultReceived(unique_id, pending.action, typed, data, tuple(repairs))

    def _bad_answer(self, pending: PendingCall, why: str) -> CallErrorReceived:
        code = self.version.wire_code(ErrorCode.FORMATION_VIOLATION)
        return CallErrorReceived(pending.unique_id, pending.action, code, why, {}, local=True)

    def _checked_inbound(
        self, kind: _validation.Kind, action: str, payload: Any
    ) -> tuple[dict[str, Any], list[str]]:
        repairs: list[str] = []
        if not isinstance(payload, dict):
            raise OcppError(ErrorCode.FORMATION_VIOLATION, "Payload must be a JSON object")
        if not self.policy.validate:
            return payload, repairs
        if self.policy.is_lenient(action):
            try:
                _validation.validate(kind, action, payload, self.version)
            except OcppError:
                payload, repairs = _validation.repair(kind, action, payload, self.version)
                if repairs:
                    log.warning("lenient %s: %s", action, peer_text("; ".join(repairs), 300))
        _validation.validate(kind, action, payload, self.version)
        return payload, repairs


def _dumps(frame: list[Any]) -> str:
    text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate the peer sent us (e.g. in its unique
            # id): escaped as \udXXX it is still valid JSON and can go out as UTF-8
            text = json.dumps(frame, separators=(",", ":"))
    return text


def _error_frame(unique_id: str, action: str | None, error: OcppError) -> Outgoing:
    code = str(error.code)
    text = _dumps([CALLERROR, unique_id, code, error.description, error.details])
    payload = {
        "errorCode": code,
        "errorDescription": error.description,
        "errorDetails": error.details,
    }
    return Outgoing(text, CALLERROR, unique_id, action, payload)
