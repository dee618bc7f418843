"""The sans-IO OCPP 1.6-J core: frames in, events out; no sockets, no trio; the clock
(:func:`utcnow`) is only a default the shells pass in."""

from ._convert import CALLS as CALLS
from ._convert import RESULTS as RESULTS
from ._convert import action_of as action_of
from ._convert import converter as converter
from ._convert import from_json_payload as from_json_payload
from ._convert import to_json_payload as to_json_payload
from ._session import MESSAGE_KINDS as MESSAGE_KINDS
from ._session import CallErrorReceived as CallErrorReceived
from ._session import CallReceived as CallReceived
from ._session import CallRejected as CallRejected
from ._session import CallResultReceived as CallResultReceived
from ._session import Event as Event
from ._session import FrameDropped as FrameDropped
from ._session import LateAnswerReceived as LateAnswerReceived
from ._session import OcppSession as OcppSession
from ._session import Outgoing as Outgoing
from ._session import PendingCall as PendingCall
from ._session import Role as Role
from ._session import SessionStatistics as SessionStatistics
from ._session import may_originate as may_originate
from ._time import iso as iso
from ._time import parse_time as parse_time
from ._time import utcnow as utcnow
from ._validation import STRICT as STRICT
from ._validation import ValidationPolicy as ValidationPolicy

__all__ = [
    "CALLS",
    "MESSAGE_KINDS",
    "RESULTS",
    "STRICT",
    "CallErrorReceived",
    "CallReceived",
    "CallRejected",
    "CallResultReceived",
    "Event",
    "FrameDropped",
    "LateAnswerReceived",
    "OcppSession",
    "Outgoing",
    "PendingCall",
    "Role",
    "SessionStatistics",
    "ValidationPolicy",
    "action_of",
    "converter",
    "from_json_payload",
    "iso",
    "may_originate",
    "parse_time",
    "to_json_payload",
    "utcnow",
]
