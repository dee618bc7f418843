"""Fault scenarios: the fault protocol, their state machines, the manager and the
OCPP-only diagnosis."""

from ._diagnosis import diagnose as diagnose
from ._faults import FAULT_VENDOR_ID as FAULT_VENDOR_ID
from ._faults import FaultState as FaultState
from ._faults import fault_clear_request as fault_clear_request
from ._faults import fault_start_request as fault_start_request
from ._findings import DiagnosisOptions as DiagnosisOptions
from ._findings import Finding as Finding
from ._manager import DEFAULT_SCENARIOS as DEFAULT_SCENARIOS
from ._manager import SCENARIO_TRANSITIONS as SCENARIO_TRANSITIONS
from ._manager import Phase as Phase
from ._manager import ScenarioError as ScenarioError
from ._manager import ScenarioEvent as ScenarioEvent
from ._manager import ScenarioManager as ScenarioManager
from ._manager import ScenarioRun as ScenarioRun
from ._manager import ScenarioSpec as ScenarioSpec

__all__ = [
    "DEFAULT_SCENARIOS",
    "FAULT_VENDOR_ID",
    "SCENARIO_TRANSITIONS",
    "DiagnosisOptions",
    "FaultState",
    "Finding",
    "Phase",
    "ScenarioError",
    "ScenarioEvent",
    "ScenarioManager",
    "ScenarioRun",
    "ScenarioSpec",
    "diagnose",
    "fault_clear_request",
    "fault_start_request",
]
