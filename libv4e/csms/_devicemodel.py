"""What an OCPP 2.0.1 charger reported of its device model (NotifyReport) and its
recent events (NotifyEvent), per charger and bounded: plain state, no I/O (the store
keeps the same, see :mod:`~libv4e.csms._devicemodels`).

A variable is keyed by its component (name, instance, EVSE, connector), its variable
(name, instance) and the attribute type (Actual, Target, MinSet, MaxSet); the latest
report or event wins. An empty instance name is no instance. Beyond
:data:`MAX_VARIABLES` variables a charger's new variables are not kept (counted in
``dropped``): a charger cannot grow the CSMS's memory or its database without bound.
Events keep the last :data:`MAX_EVENTS`.

A message is read in two steps: :meth:`DeviceModel.plan_report` /
:meth:`DeviceModel.plan_event` say what it changes without changing anything, and
:meth:`DeviceModel.apply` changes it, so that a caller can write the change to its
store first and keep memory as the store has it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

from libv4e.protocol._fields import field as _get

MAX_VARIABLES = 2000
"""Variables kept per charger."""
MAX_EVENTS = 100
"""Events kept per charger (the latest)."""
SET_VARIABLES = "SetVariables"
"""The ``source`` of a value the CSMS set (a SetVariables the station Accepted)."""


@dataclasses.dataclass(frozen=True, slots=True)
class VariableKey:
    """Where a value lives in the device model."""

    component: str
    variable: str
    attribute: str = "Actual"
    component_instance: str | None = None
    variable_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class ReportedVariable:
    """A variable's last reported value (``None``: reported without a value, e.g. a
    write-only one) and how it was reported."""

    key: VariableKey
    value: str | None
    mutability: str | None = None
    source: str = "NotifyReport"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            **self.key.as_dict(),
            "value": self.value,
            "mutability": self.mutability,
            "source": self.source,
        }


SECRETS = frozenset({("securityctrlr", "basicauthpassword")})
"""(component, variable), casefolded, whose values are never kept: the HTTP Basic
password is write-only (a station that reports it anyway, or a SetVariables that sets
it, leaves the variable known without its value)."""


def _shown(key: VariableKey, value: Any) -> Any:
    if (key.component.casefold(), key.variable.casefold()) in SECRETS:
        return None
    return value


def variable_key(component: Any, variable: Any, attribute: Any) -> VariableKey:
    """The key of ``variable`` of ``component`` (``ocpp.v201`` datatypes or dicts),
    attribute type ``attribute`` (Actual when None)."""
    evse = _get(component, "evse")
    return VariableKey(
        component=str(_get(component, "name")),
        variable=str(_get(variable, "name")),
        attribute=str(attribute or "Actual"),
        component_instance=_get(component, "instance") or None,
        variable_instance=_get(variable, "instance") or None,
        evse_id=None if evse is None else _get(evse, "id"),
        connector_id=None if evse is None else _get(evse, "connector_id"),
    )


class DeviceModel:
    """One charger's reported variables and recent events."""

    def __init__(self, *, max_variables: int = MAX_VARIABLES, max_events: int = MAX_EVENTS):
        self.max_variables = max_variables
        self.variables: dict[VariableKey, ReportedVariable] = {}
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_events)
        self.dropped = 0
        """Variables not kept because the bound was reached."""

    def __len__(self) -> int:
        return len(self.variables)

    def _put(self, variable: ReportedVariable) -> None:
        if variable.key in self.variables or len(self.variables) < self.max_variables:
            self.variables[variable.key] = variable
        else:
            self.dropped += 1

    def apply(
        self, variables: Sequence[ReportedVariable], events: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Take what :meth:`plan_report` or :meth:`plan_event` planned (in order: a new
        variable beyond the bound is dropped, a known one is updated)."""
        for variable in variables:
            self._put(variable)
        self.events.extend(events)

    def plan_report(self, report_data: list[Any] | None) -> list[ReportedVariable]:
        """The variables NotifyReport's ``reportData`` (``ocpp.v201.datatypes.ReportDataType``)
        reports, in order; nothing changes until :meth:`apply`."""
        out = []
        for item in report_data or ():
            characteristics = _get(item, "variable_characteristics")
            for attribute in _get(item, "variable_attribute") or ():
                key = variable_key(
                    _get(item, "component"), _get(item, "variable"), _get(attribute, "type")
                )
                mutability = _get(attribute, "mutability")
                value = _shown(key, _get(attribute, "value"))
                out.append(
                    ReportedVariable(
                        key,
                        None if value is None else str(value),
                        None if mutability is None else str(mutability),
                    )
                )
            if characteristics is not None and not _get(item, "variable_attribute"):
                key = variable_key(_get(item, "component"), _get(item, "variable"), None)
                out.append(ReportedVariable(key, None))
        return out

    def plan_event(
        self, event_data: list[Any], generated_at: str
    ) -> tuple[list[ReportedVariable], list[dict[str, Any]]]:
        """The variables and events NotifyEvent's ``eventData``
        (``ocpp.v201.datatypes.EventDataType``) brings: each event is kept, and its
        ``actualValue`` becomes the variable's Actual value (its mutability as known).
        Nothing changes until :meth:`apply`."""
        variables: list[ReportedVariable] = []
        events: list[dict[str, Any]] = []
        for item in event_data:
            key = variable_key(_get(item, "component"), _get(item, "variable"), None)
            value = _shown(key, _get(item, "actual_value"))
            old = self.variables.get(key)
            variables.append(
                ReportedVariable(
                    key,
                    None if value is None else str(value),
                    None if old is None else old.mutability,
                    source="NotifyEvent",
                )
            )
            events.append(
                {
                    "event_id": _get(item, "event_id"),
                    "timestamp": _get(item, "timestamp"),
                    "trigger": str(_get(item, "trigger")),
                    "event_notification_type": str(_get(item, "event_notification_type")),
                    "actual_value": value,
                    "cleared": _get(item, "cleared"),
                    "tech_code": _get(item, "tech_code"),
                    "tech_info": _get(item, "tech_info"),
                    **key.as_dict(),
                    "generated_at": generated_at,
                }
            )
        return variables, events

    def plan_set(self, values: Sequence[tuple[VariableKey, str | None]]) -> list[ReportedVariable]:
        """The variables a SetVariables the station Accepted sets (their mutability as
        known); nothing changes until :meth:`apply`."""
        out = []
        for key, value in values:
            old = self.variables.get(key)
            mutability = None if old is None else old.mutability
            out.append(ReportedVariable(key, _shown(key, value), mutability, source=SET_VARIABLES))
        return out

    def report(self, report_data: list[Any] | None) -> None:
        """Take NotifyReport's ``reportData`` (``ocpp.v201.datatypes.ReportDataType``)."""
        self.apply(self.plan_report(report_data))

    def event(self, event_data: list[Any], generated_at: str) -> None:
        """Take NotifyEvent's ``eventData`` (``ocpp.v201.datatypes.EventDataType``): each
        event is kept, and its ``actualValue`` becomes the variable's Actual value."""
        self.apply(*self.plan_event(event_data, generated_at))

    def value(
        self, component: str, variable: str, attribute: str = "Actual", **where: Any
    ) -> str | None:
        """The reported value of ``component.variable`` (first match of ``where``:
        ``evse_id=``, ``component_instance=``…), or None."""
        reported = self.reported(component, variable, attribute, **where)
        return None if reported is None else reported.value

    def reported(
        self, component: str, variable: str, attribute: str = "Actual", **where: Any
    ) -> ReportedVariable | None:
        """What is known of ``component.variable`` (its value, mutability, source), as
        :meth:`value` finds it, or None."""
        for key, reported in self.variables.items():
            if (key.component, key.variable, key.attribute) != (component, variable, attribute):
                continue
            if all(getattr(key, name) == want for name, want in where.items()):
                return reported
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "variables": [v.as_dict() for v in self.variables.values()],
            "events": list(self.events),
            "dropped": self.dropped,
        }
