"""Fault scenarios: the fault protocol, their state machines, the manager and the
OCPP-only diagnosis."""

from ._catalog import DEFAULT_SCENARIOS as DEFAULT_SCENARIOS
from ._diagnosis import diagnose as diagnose
from ._faults import FAULT_VENDOR_ID as FAULT_VENDOR_ID
from ._faults import FaultState as FaultState
from ._faults import fault_clear_request as fault_clear_request
from ._faults import fault_start_request as fault_start_request
from ._findings import DiagnosisOptions as DiagnosisOptions
from ._findings import Finding as Finding
from ._machines import SCENARIO_TRANSITIONS as SCENARIO_TRANSITIONS
from ._machines import Phase as Phase
from ._machines import ScenarioError as ScenarioError
from ._machines import ScenarioEvent as ScenarioEvent
from ._machines import ScenarioRun as ScenarioRun
from ._machines import ScenarioSpec as ScenarioSpec
from ._manager import ScenarioManager as ScenarioManager
from ._voice import LANGUAGES as LANGUAGES
from ._voice import PHRASES as PHRASES
from ._voice import Line as Line
from ._voice import Voice as Voice
from ._voice import pick_language as pick_language

__all__ = [
    "DEFAULT_SCENARIOS",
    "FAULT_VENDOR_ID",
    "LANGUAGES",
    "PHRASES",
    "SCENARIO_TRANSITIONS",
    "DiagnosisOptions",
    "FaultState",
    "Finding",
    "Line",
    "Phase",
    "ScenarioError",
    "ScenarioEvent",
    "ScenarioManager",
    "ScenarioRun",
    "ScenarioSpec",
    "Voice",
    "diagnose",
    "fault_clear_request",
    "fault_start_request",
    "pick_language",
]
