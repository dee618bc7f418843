"""The sans-IO OCPP-J core (1.6 and 2.0.1): frames in, events out; no sockets, no trio; the clock
(:func:`utcnow`) is only a default the shells pass in."""

from ._convert import CALLS as CALLS
from ._convert import CATALOGUES as CATALOGUES
from ._convert import RESULTS as RESULTS
from ._convert import Catalogue as Catalogue
from ._convert import action_of as action_of
from ._convert import converter as converter
from ._convert import from_json_payload as from_json_payload
from ._convert import to_json_payload as to_json_payload
from ._convert import version_of as version_of
from ._session import MESSAGE_KINDS as MESSAGE_KINDS
from ._session import CallErrorReceived as CallErrorReceived
from ._session import CallReceived as CallReceived
from ._session import CallRejected as CallRejected
from ._session import CallResultReceived as CallResultReceived
from ._session import Event as Event
from ._session import FrameDropped as FrameDropped
from ._session import LateAnswerReceived as LateAnswerReceived
from ._session import MessageType as MessageType
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
from ._validation import validate as validate
from ._version import DEFAULT_PREFERENCE as DEFAULT_PREFERENCE
from ._version import OcppVersion as OcppVersion
from ._version import negotiate as negotiate
from ._x509 import CertificateInfo as CertificateInfo
from ._x509 import certificate_info as certificate_info
from ._x509 import certificate_signing_request as certificate_signing_request
from ._x509 import chain_pem as chain_pem
from ._x509 import hash_data as hash_data
from ._x509 import load_pem_chain as load_pem_chain
from ._x509 import load_private_key as load_private_key
from ._x509 import new_private_key as new_private_key
from ._x509 import private_key_pem as private_key_pem

__all__ = [
    "CALLS",
    "CATALOGUES",
    "DEFAULT_PREFERENCE",
    "MESSAGE_KINDS",
    "RESULTS",
    "STRICT",
    "CallErrorReceived",
    "CallReceived",
    "CallRejected",
    "CallResultReceived",
    "Catalogue",
    "CertificateInfo",
    "Event",
    "FrameDropped",
    "LateAnswerReceived",
    "MessageType",
    "OcppSession",
    "OcppVersion",
    "Outgoing",
    "PendingCall",
    "Role",
    "SessionStatistics",
    "ValidationPolicy",
    "action_of",
    "certificate_info",
    "certificate_signing_request",
    "chain_pem",
    "converter",
    "from_json_payload",
    "hash_data",
    "iso",
    "load_pem_chain",
    "load_private_key",
    "may_originate",
    "negotiate",
    "new_private_key",
    "parse_time",
    "private_key_pem",
    "to_json_payload",
    "utcnow",
    "validate",
    "version_of",
]
