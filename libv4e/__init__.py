"""libv4e: OCPP 1.6-J on Trio — a sans-IO session, a Trio transport, a central system,
a charger simulator and the fault scenarios of the Voice4EVs backend.

The headline names are here; each layer's subpackage (``libv4e.protocol``,
``libv4e.transport``, ``libv4e.csms``, ``libv4e.charger``, ``libv4e.scenarios``) lists
the rest in its own ``__all__``."""

from ._errors import CallFailed as CallFailed
from ._errors import CallTimeoutError as CallTimeoutError
from ._errors import ChargerNotConnectedError as ChargerNotConnectedError
from ._errors import ConnectionLostError as ConnectionLostError
from ._errors import ErrorCode as ErrorCode
from ._errors import Libv4eError as Libv4eError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import OcppError as OcppError
from ._errors import RemoteCallError as RemoteCallError
from ._errors import StoreDataError as StoreDataError
from ._errors import StoreError as StoreError
from ._errors import TransactionIdsExhausted as TransactionIdsExhausted
from .charger import Charger as Charger
from .charger import ChargerConfig as ChargerConfig
from .charger import FleetConfig as FleetConfig
from .charger import serve_fleet as serve_fleet
from .csms import CentralSystem as CentralSystem
from .csms import CsmsConfig as CsmsConfig
from .csms import SqliteStore as SqliteStore
from .csms import Store as Store
from .protocol import CallErrorReceived as CallErrorReceived
from .protocol import CallReceived as CallReceived
from .protocol import CallRejected as CallRejected
from .protocol import CallResultReceived as CallResultReceived
from .protocol import FrameDropped as FrameDropped
from .protocol import LateAnswerReceived as LateAnswerReceived
from .protocol import OcppSession as OcppSession
from .protocol import Outgoing as Outgoing
from .protocol import Role as Role
from .scenarios import ScenarioError as ScenarioError
from .scenarios import ScenarioManager as ScenarioManager
from .scenarios import diagnose as diagnose
from .transport import ConnectError as ConnectError
from .transport import OcppConnection as OcppConnection
from .transport import Reply as Reply
from .transport import handlers_from as handlers_from
from .transport import open_ocpp as open_ocpp
from .transport import serve_ocpp as serve_ocpp

__version__ = "0.1.0"

__all__ = [
    "CallErrorReceived",
    "CallFailed",
    "CallReceived",
    "CallRejected",
    "CallResultReceived",
    "CallTimeoutError",
    "CentralSystem",
    "Charger",
    "ChargerConfig",
    "ChargerNotConnectedError",
    "ConnectError",
    "ConnectionLostError",
    "CsmsConfig",
    "ErrorCode",
    "FleetConfig",
    "FrameDropped",
    "LateAnswerReceived",
    "Libv4eError",
    "LocalProtocolError",
    "OcppConnection",
    "OcppError",
    "OcppSession",
    "Outgoing",
    "RemoteCallError",
    "Reply",
    "Role",
    "ScenarioError",
    "ScenarioManager",
    "SqliteStore",
    "Store",
    "StoreDataError",
    "StoreError",
    "TransactionIdsExhausted",
    "diagnose",
    "handlers_from",
    "open_ocpp",
    "serve_fleet",
    "serve_ocpp",
]
