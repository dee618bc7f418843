"""The one exception hierarchy of libv4e, and the OCPP-J CallError codes (1.6 and 2.0.1).

::

    Libv4eError
    ├── OcppError                  an OCPP CallError: raised by a handler, sent to the peer
    ├── LocalProtocolError         we tried something OCPP-J forbids (our bug)
    ├── CallFailed                 a call we made to a peer gave no result
    │   ├── ChargerNotConnectedError   no open connection to that charger
    │   ├── ConnectionLostError        the connection closed before the answer
    │   ├── CallTimeoutError           no answer in time
    │   └── RemoteCallError            the peer answered with a CallError
    ├── ConnectError               a client could not open its connection
    ├── UnknownChargerError        no charger by that id (also a KeyError)
    ├── ChargerConnectedError      the charger is connected: not while it is (a ValueError)
    ├── UnknownTagError            no id tag by that id in the CSMS's list (also a KeyError)
    ├── StoreError                 the database failed; nothing was half-written
    │   ├── StoreDataError             data the store cannot hold (the caller's fault)
    │   └── TransactionIdsExhausted    every OCPP transaction id (1 … 2^31−1) was handed out
    ├── CertificateRequestRejected a charger's CSR the CA will not sign (security extension)
    ├── SecurityPolicyError        a security command the whitepaper's rules forbid
    ├── DriverActionRefused        a driver's action the charger physically refuses
    ├── InvalidInitialState        a sandbox initial state that cannot be applied
    ├── UnsupportedCommandError    a command the charger's OCPP version has no call for
    └── ScenarioError              a fault scenario cannot be played as asked
                                   (defined in libv4e.scenarios, next to its reasons)

A peer's CallError (:class:`RemoteCallError`) is not an :class:`OcppError`: it cannot be
re-raised into another peer's answer by accident. The REST API translates these to HTTP
in one place (``apps/csms``); the OCPP layer translates :class:`OcppError`, a
:class:`StoreError` (InternalError: the charger retries) and any other handler failure
(InternalError) in one place (the session's ``send_failure``). Layers between raise and
pass these on; none translates one error into another.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """The CallError codes of OCPP-J 1.6 and 2.0.1, spelled as each specification spells
    them. Raise either spelling: a session sends the code its version defines
    (``libv4e.protocol.OcppVersion.wire_code``, the one translation)."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"
    # OCPP-J 2.0.1 only (a 1.6 session sends the 1.6 code for the same error)
    FORMAT_VIOLATION = "FormatViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"


# The descriptions the specification gives each code (OCPP-J 1.6, section 4.2.3).
DEFAULT_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.NOT_IMPLEMENTED: "Requested Action is not known by receiver",
    ErrorCode.NOT_SUPPORTED: "Requested Action is recognized but not supported by the receiver",
    ErrorCode.INTERNAL_ERROR: "An internal error occurred and the receiver was not able to "
    "process the requested Action successfully",
    ErrorCode.PROTOCOL_ERROR: "Payload for Action is incomplete",
    ErrorCode.SECURITY_ERROR: "During the processing of Action a security issue occurred "
    "preventing receiver from completing the Action successfully",
    ErrorCode.FORMATION_VIOLATION: "Payload for Action is syntactically incorrect or not "
    "conform the PDU structure for Action",
    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION: "Payload is syntactically correct but at least "
    "one field contains an invalid value",
    ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION: "Payload for Action is syntactically correct "
    "but at least one of the fields violates occurence constraints",
    ErrorCode.TYPE_CONSTRAINT_VIOLATION: "Payload for Action is syntactically correct but at "
    "least one of the fields violates data type constraints",
    ErrorCode.GENERIC_ERROR: "Any other error not covered by the previous ones",
    # OCPP-J 2.0.1, section 4.3
    ErrorCode.FORMAT_VIOLATION: "Payload for Action is syntactically incorrect",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "Payload for Action is syntactically correct "
    "but at least one of the fields violates occurrence constraints",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "A message with a Message Type Id was received "
    "that is not supported by this implementation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "Content of the call is not a valid RPC Request",
}


class Libv4eError(Exception):
    """The base of every exception libv4e raises on purpose."""


class OcppError(Libv4eError):
    """An OCPP CallError: raise it from a handler to answer a call with this error.

    ``code`` is one of :class:`ErrorCode`; ``description`` is sent to the peer, so keep
    internals out of it; ``details`` must be a JSON object.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        description: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(code, ErrorCode) and code in ErrorCode._value2member_map_:
            code = ErrorCode(code)
        self.code = code
        if description is None:
            description = DEFAULT_DESCRIPTIONS.get(code, "") if isinstance(code, ErrorCode) else ""
        self.description = description
        self.details = details or {}
        super().__init__(f"{self.code}: {self.description}")


class CallFailed(Libv4eError):
    """A call we made to a peer gave no result (see the subclasses for why)."""


class RemoteCallError(CallFailed):
    """The peer answered our call with a CallError (``code``, ``description``,
    ``details`` as it sent them)."""

    def __init__(
        self,
        action: str,
        code: str,
        description: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{action} answered with {code}: {description}")
        self.action = action
        self.code = code
        self.description = description
        self.details = details or {}


class CallTimeoutError(CallFailed):
    """The peer did not answer our call within the timeout."""

    def __init__(self, action: str, timeout: float) -> None:
        super().__init__(f"no answer to {action} within {timeout:g} s")
        self.action = action
        self.timeout = timeout


class ConnectionLostError(CallFailed):
    """The connection closed before the peer answered, or before we could send."""


class ChargerNotConnectedError(CallFailed):
    """A command was sent to a charger that has no open connection (``known``: whether
    the CSMS knows the charger at all)."""

    def __init__(self, cp_id: str, known: bool) -> None:
        state = "is not connected" if known else "is unknown (it never connected)"
        super().__init__(f"charge point {cp_id} {state}")
        self.cp_id, self.known = cp_id, known


class UnknownChargerError(Libv4eError, KeyError):
    """No charger by that id (the CSMS never saw it, or it was deleted)."""

    def __init__(self, cp_id: str) -> None:
        super().__init__(cp_id)
        self.cp_id = cp_id

    def __str__(self) -> str:
        return f"charge point {self.cp_id} is unknown"


class ChargerConnectedError(Libv4eError, ValueError):
    """What was asked cannot be done while the charger is connected (deleting it)."""

    def __init__(self, cp_id: str, what: str) -> None:
        super().__init__(f"charge point {cp_id} is connected: {what} only once it is not")
        self.cp_id = cp_id


class UnknownTagError(Libv4eError, KeyError):
    """No id tag by that id in the CSMS's list."""

    def __init__(self, id_tag: str) -> None:
        super().__init__(id_tag)
        self.id_tag = id_tag

    def __str__(self) -> str:
        return f"id tag {self.id_tag} is not in the list"


class StoreError(Libv4eError):
    """The database failed (locked, full, corrupt, unreachable); nothing was half-written."""


class StoreDataError(StoreError):
    """The data could not be stored (text that is not valid Unicode, an integer beyond
    64 bits): the caller's input is at fault, not the database; retrying cannot help."""


class TransactionIdsExhausted(StoreError):
    """Every transaction id OCPP 1.6 can carry (a 32-bit integer, 1 … 2^31−1) was handed
    out: ids are never reused (they key the billing records), so new sessions are refused
    (CALLERROR InternalError) until the operator archives the transactions."""


class InvalidTransition(Libv4eError, ValueError):
    """A state machine (a connector, a reservation, a profile, a local list update) cannot
    take that event in its present state."""


class LocalProtocolError(Libv4eError):
    """We tried to do something OCPP-J forbids (our bug, not the peer's).

    For example: a second call while one is outstanding on the sans-IO session, an action
    our role may not send, or a payload that does not match the schema.
    """


class ConnectError(Libv4eError):
    """A client could not open its connection: the central system refused the websocket
    handshake (``status``: its HTTP status) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CertificateRequestRejected(Libv4eError, ValueError):
    """A certificate signing request the CSMS's CA will not sign: not a CSR, a signature
    that does not verify, a subject CN that is not the charger id, a weak key."""


class SecurityPolicyError(Libv4eError, ValueError):
    """A security command or setting the OCPP 1.6 Security Whitepaper's rules forbid: a
    SecurityProfile that would go down, profile 3 without a charger certificate, an
    AuthorizationKey that is not 16–40 printable characters."""


class DriverActionRefused(Libv4eError):
    """A driver's action at a simulated charger that the charger physically refuses: the
    cable cannot come out while it is locked (a session running, or the lock stuck), it is
    already plugged in, the connector does not exist. ``action`` names the action,
    ``reason`` says why in words a driver would use."""

    def __init__(self, action: str, reason: str, *, cp_id: str | None = None) -> None:
        super().__init__(f"{action}: {reason}")
        self.action, self.reason, self.cp_id = action, reason, cp_id


class MessageTooLarge(Libv4eError, ValueError):
    """A call the CSMS would send that does not fit in one frame (``size`` bytes over
    ``limit``), e.g. a SendLocalList of a 100,000-card list; ``hint`` says what to send
    instead."""

    def __init__(self, what: str, size: int, limit: int, hint: str) -> None:
        super().__init__(f"{what} would be {size} bytes, over the {limit}-byte frame: {hint}")
        self.size, self.limit, self.hint = size, limit, hint


class InvalidInitialState(Libv4eError, ValueError):
    """A sandbox's initial state that cannot be applied; ``field`` names the offending
    field as a path (``cards[1].status``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnsupportedCommandError(Libv4eError):
    """A command with no counterpart in the OCPP version the charger speaks (e.g. a 1.6
    command with no 2.0.1 call that does the same); ``how`` narrows it down."""

    def __init__(self, action: str, version: str, how: str = "") -> None:
        detail = f" {how}" if how else ""
        super().__init__(f"{action}{detail} does not exist for an OCPP {version} charger")
        self.action, self.version, self.how = action, version, how
