"""The Trio shell: websockets, one OCPP connection, the server and the client."""

from .._errors import ConnectError as ConnectError
from ._connection import DEFAULT_CALL_TIMEOUT as DEFAULT_CALL_TIMEOUT
from ._connection import SUBPROTOCOL as SUBPROTOCOL
from ._connection import Direction as Direction
from ._connection import Handler as Handler
from ._connection import MessageRecord as MessageRecord
from ._connection import Observer as Observer
from ._connection import OcppConnection as OcppConnection
from ._connection import Reply as Reply
from ._connection import handlers_from as handlers_from
from ._flow import FlowControl as FlowControl
from ._handlers import BoundHandlers as BoundHandlers
from ._hosts import is_loopback as is_loopback
from ._upgrade import Handshake as Handshake
from ._upgrade import serve_websockets as serve_websockets
from ._websocket import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from ._websocket import Admission as Admission
from ._websocket import ConnectionRequest as ConnectionRequest
from ._websocket import Refusal as Refusal
from ._websocket import open_ocpp as open_ocpp
from ._websocket import serve_ocpp as serve_ocpp
from ._websocket import valid_cp_id as valid_cp_id

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "SUBPROTOCOL",
    "Admission",
    "BoundHandlers",
    "ConnectError",
    "ConnectionRequest",
    "Direction",
    "FlowControl",
    "Handler",
    "Handshake",
    "MessageRecord",
    "Observer",
    "OcppConnection",
    "Refusal",
    "Reply",
    "handlers_from",
    "is_loopback",
    "open_ocpp",
    "serve_ocpp",
    "serve_websockets",
    "valid_cp_id",
]
