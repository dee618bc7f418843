"""Fault scenarios: the fault protocol, their state machines, the manager and the
OCPP-only diagnosis (typed codes and facts: the apps word them)."""

from ._catalog import DEFAULT_SCENARIOS as DEFAULT_SCENARIOS
from ._diagnosis import diagnose as diagnose
from ._faults import FAULT_VENDOR_ID as FAULT_VENDOR_ID
from ._faults import FaultState as FaultState
from ._faults import fault_clear_request as fault_clear_request
from ._faults import fault_start_request as fault_start_request
from ._findings import Action as Action
from ._findings import ActionKind as ActionKind
from ._findings import Diagnosis as Diagnosis
from ._findings import DiagnosisCheck as DiagnosisCheck
from ._findings import DiagnosisOptions as DiagnosisOptions
from ._findings import Evidence as Evidence
from ._findings import EvidenceKind as EvidenceKind
from ._findings import Finding as Finding
from ._findings import FindingCode as FindingCode
from ._findings import Impact as Impact
from ._findings import ImpactScope as ImpactScope
from ._findings import Pending as Pending
from ._findings import StoppedSession as StoppedSession
from ._findings import Verdict as Verdict
from ._findings import WindowReason as WindowReason
from ._machines import SCENARIO_TRANSITIONS as SCENARIO_TRANSITIONS
from ._machines import Phase as Phase
from ._machines import ScenarioError as ScenarioError
from ._machines import ScenarioEvent as ScenarioEvent
from ._machines import ScenarioRun as ScenarioRun
from ._machines import ScenarioSpec as ScenarioSpec
from ._manager import ScenarioManager as ScenarioManager
from ._voice import Line as Line
from ._voice import Say as Say

__all__ = [
    "DEFAULT_SCENARIOS",
    "FAULT_VENDOR_ID",
    "SCENARIO_TRANSITIONS",
    "Action",
    "ActionKind",
    "Diagnosis",
    "DiagnosisCheck",
    "DiagnosisOptions",
    "Evidence",
    "EvidenceKind",
    "FaultState",
    "Finding",
    "FindingCode",
    "Impact",
    "ImpactScope",
    "Line",
    "Pending",
    "Phase",
    "Say",
    "ScenarioError",
    "ScenarioEvent",
    "ScenarioManager",
    "ScenarioRun",
    "ScenarioSpec",
    "StoppedSession",
    "Verdict",
    "WindowReason",
    "diagnose",
    "fault_clear_request",
    "fault_start_request",
]
