"""libv4e: OCPP 1.6-J on Trio — a sans-IO session, a CSMS, a charger simulator and the
fault scenarios of the Voice4EVs backend."""

# Names are imported on first use (PEP 562), so that a process that needs only part of
# the library (``v4e sim`` running 10,000 chargers) does not carry the API server, the
# agent tools and their dependencies: about 40 MB, 4 KiB per charger at 10,000.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._agent import Line as Line
    from ._agent import Outcome as Outcome
    from ._agent import ScriptedAgent as ScriptedAgent
    from ._agent import fetch_scenarios as fetch_scenarios
    from ._api import ApiAccess as ApiAccess
    from ._api import create_app as create_app
    from ._api import serve_api as serve_api
    from ._auth import AuthorizationList as AuthorizationList
    from ._auth import IdTag as IdTag
    from ._auth import UnknownTagPolicy as UnknownTagPolicy
    from ._backend import Backend as Backend
    from ._backend import BackendConfig as BackendConfig
    from ._backend import serve_backend as serve_backend
    from ._charger import Charger as Charger
    from ._charger import ChargerConfig as ChargerConfig
    from ._charger_model import CONNECTOR_TRANSITIONS as CONNECTOR_TRANSITIONS
    from ._charger_model import Configuration as Configuration
    from ._charger_model import Connector as Connector
    from ._charger_model import ConnectorEvent as ConnectorEvent
    from ._charger_model import LocalAuthorization as LocalAuthorization
    from ._charger_model import Meter as Meter
    from ._connection import MessageRecord as MessageRecord
    from ._connection import OcppConnection as OcppConnection
    from ._connection import Reply as Reply
    from ._connection import handlers_from as handlers_from
    from ._convert import converter as converter
    from ._convert import from_json_payload as from_json_payload
    from ._convert import to_json_payload as to_json_payload
    from ._csms import CentralSystem as CentralSystem
    from ._csms import ChargerNotConnectedError as ChargerNotConnectedError
    from ._csms import CsmsConfig as CsmsConfig
    from ._diagnosis import DiagnosisOptions as DiagnosisOptions
    from ._diagnosis import Finding as Finding
    from ._diagnosis import diagnose as diagnose
    from ._errors import CallTimeoutError as CallTimeoutError
    from ._errors import ConnectionLostError as ConnectionLostError
    from ._errors import ErrorCode as ErrorCode
    from ._errors import LocalProtocolError as LocalProtocolError
    from ._errors import OcppError as OcppError
    from ._errors import RemoteCallError as RemoteCallError
    from ._faults import FAULT_VENDOR_ID as FAULT_VENDOR_ID
    from ._faults import fault_clear_request as fault_clear_request
    from ._faults import fault_start_request as fault_start_request
    from ._fleet import FleetConfig as FleetConfig
    from ._fleet import serve_fleet as serve_fleet
    from ._registry import ChargePointState as ChargePointState
    from ._registry import ConnectorState as ConnectorState
    from ._registry import Registry as Registry
    from ._registry import Transaction as Transaction
    from ._scenarios import DEFAULT_SCENARIOS as DEFAULT_SCENARIOS
    from ._scenarios import SCENARIO_TRANSITIONS as SCENARIO_TRANSITIONS
    from ._scenarios import Phase as Phase
    from ._scenarios import ScenarioError as ScenarioError
    from ._scenarios import ScenarioEvent as ScenarioEvent
    from ._scenarios import ScenarioManager as ScenarioManager
    from ._scenarios import ScenarioRun as ScenarioRun
    from ._scenarios import ScenarioSpec as ScenarioSpec
    from ._session import CallErrorReceived as CallErrorReceived
    from ._session import CallReceived as CallReceived
    from ._session import CallRejected as CallRejected
    from ._session import CallResultReceived as CallResultReceived
    from ._session import FrameDropped as FrameDropped
    from ._session import OcppSession as OcppSession
    from ._session import Outgoing as Outgoing
    from ._session import Role as Role
    from ._session import may_originate as may_originate
    from ._store import SqliteStore as SqliteStore
    from ._store import Store as Store
    from ._store import StoreError as StoreError
    from ._store import Ticket as Ticket
    from ._transport import ConnectError as ConnectError
    from ._transport import ConnectionRequest as ConnectionRequest
    from ._transport import Refusal as Refusal
    from ._transport import open_ocpp as open_ocpp
    from ._transport import serve_ocpp as serve_ocpp
    from ._transport import valid_cp_id as valid_cp_id
    from ._validation import ValidationPolicy as ValidationPolicy

_WHERE = {
    "Line": "_agent",
    "Outcome": "_agent",
    "ScriptedAgent": "_agent",
    "fetch_scenarios": "_agent",
    "ApiAccess": "_api",
    "create_app": "_api",
    "serve_api": "_api",
    "AuthorizationList": "_auth",
    "IdTag": "_auth",
    "UnknownTagPolicy": "_auth",
    "Backend": "_backend",
    "BackendConfig": "_backend",
    "serve_backend": "_backend",
    "Charger": "_charger",
    "ChargerConfig": "_charger",
    "CONNECTOR_TRANSITIONS": "_charger_model",
    "Configuration": "_charger_model",
    "Connector": "_charger_model",
    "ConnectorEvent": "_charger_model",
    "LocalAuthorization": "_charger_model",
    "Meter": "_charger_model",
    "MessageRecord": "_connection",
    "OcppConnection": "_connection",
    "Reply": "_connection",
    "handlers_from": "_connection",
    "converter": "_convert",
    "from_json_payload": "_convert",
    "to_json_payload": "_convert",
    "CentralSystem": "_csms",
    "ChargerNotConnectedError": "_csms",
    "CsmsConfig": "_csms",
    "DiagnosisOptions": "_diagnosis",
    "Finding": "_diagnosis",
    "diagnose": "_diagnosis",
    "CallTimeoutError": "_errors",
    "ConnectionLostError": "_errors",
    "ErrorCode": "_errors",
    "LocalProtocolError": "_errors",
    "OcppError": "_errors",
    "RemoteCallError": "_errors",
    "FAULT_VENDOR_ID": "_faults",
    "fault_clear_request": "_faults",
    "fault_start_request": "_faults",
    "FleetConfig": "_fleet",
    "serve_fleet": "_fleet",
    "ChargePointState": "_registry",
    "ConnectorState": "_registry",
    "Registry": "_registry",
    "Transaction": "_registry",
    "DEFAULT_SCENARIOS": "_scenarios",
    "SCENARIO_TRANSITIONS": "_scenarios",
    "Phase": "_scenarios",
    "ScenarioError": "_scenarios",
    "ScenarioEvent": "_scenarios",
    "ScenarioManager": "_scenarios",
    "ScenarioRun": "_scenarios",
    "ScenarioSpec": "_scenarios",
    "CallErrorReceived": "_session",
    "CallReceived": "_session",
    "CallRejected": "_session",
    "CallResultReceived": "_session",
    "FrameDropped": "_session",
    "OcppSession": "_session",
    "Outgoing": "_session",
    "Role": "_session",
    "may_originate": "_session",
    "SqliteStore": "_store",
    "Store": "_store",
    "StoreError": "_store",
    "Ticket": "_store",
    "ConnectError": "_transport",
    "ConnectionRequest": "_transport",
    "Refusal": "_transport",
    "open_ocpp": "_transport",
    "serve_ocpp": "_transport",
    "valid_cp_id": "_transport",
    "ValidationPolicy": "_validation",
}

__all__ = sorted(_WHERE)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'libv4e' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"libv4e._{module.lstrip('_')}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
