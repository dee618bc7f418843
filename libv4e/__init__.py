"""libv4e: OCPP 1.6-J on Trio — a sans-IO session, a CSMS, a charger simulator and the
fault scenarios of the Voice4EVs backend."""

from ._connection import MessageRecord as MessageRecord
from ._connection import OcppConnection as OcppConnection
from ._connection import Reply as Reply
from ._connection import handlers_from as handlers_from
from ._convert import converter as converter
from ._convert import from_json_payload as from_json_payload
from ._convert import to_json_payload as to_json_payload
from ._errors import CallTimeoutError as CallTimeoutError
from ._errors import ConnectionLostError as ConnectionLostError
from ._errors import ErrorCode as ErrorCode
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import OcppError as OcppError
from ._errors import RemoteCallError as RemoteCallError
from ._session import CallErrorReceived as CallErrorReceived
from ._session import CallReceived as CallReceived
from ._session import CallRejected as CallRejected
from ._session import CallResultReceived as CallResultReceived
from ._session import FrameDropped as FrameDropped
from ._session import OcppSession as OcppSession
from ._session import Outgoing as Outgoing
from ._session import Role as Role
from ._session import may_originate as may_originate
from ._transport import ConnectError as ConnectError
from ._transport import ConnectionRequest as ConnectionRequest
from ._transport import Refusal as Refusal
from ._transport import open_ocpp as open_ocpp
from ._transport import serve_ocpp as serve_ocpp
from ._transport import valid_cp_id as valid_cp_id
from ._validation import ValidationPolicy as ValidationPolicy

__version__ = "0.1.0"
