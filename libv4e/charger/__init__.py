"""A simulated charge point: its state machines, runtime, saved state and fleets."""

from ._charger import Charger as Charger
from ._charger import ChargerConfig as ChargerConfig
from ._charger import ChargerState as ChargerState
from ._driver import CarApp as CarApp
from ._driver import Display as Display
from ._driver import Driver as Driver
from ._driver import DriverActionRefused as DriverActionRefused
from ._fleet import FleetConfig as FleetConfig
from ._fleet import serve_fleet as serve_fleet
from ._handlers import CommandHandlers as CommandHandlers
from ._link import Link as Link
from ._metering import Metering as Metering
from ._model import CONNECTOR_TRANSITIONS as CONNECTOR_TRANSITIONS
from ._model import ChargingSession as ChargingSession
from ._model import Configuration as Configuration
from ._model import Connector as Connector
from ._model import ConnectorEvent as ConnectorEvent
from ._model import LocalAuthorization as LocalAuthorization
from ._model import Meter as Meter
from ._outbox import Outbox as Outbox
from ._outbox import StatusBoard as StatusBoard
from ._runtime import Runtime as Runtime
from ._sessions import Sessions as Sessions

__all__ = [
    "CONNECTOR_TRANSITIONS",
    "CarApp",
    "Charger",
    "ChargerConfig",
    "ChargerState",
    "ChargingSession",
    "CommandHandlers",
    "Configuration",
    "Connector",
    "ConnectorEvent",
    "Display",
    "Driver",
    "DriverActionRefused",
    "FleetConfig",
    "Link",
    "LocalAuthorization",
    "Meter",
    "Metering",
    "Outbox",
    "Runtime",
    "Sessions",
    "StatusBoard",
    "serve_fleet",
]
