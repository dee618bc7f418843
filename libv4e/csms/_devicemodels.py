"""The OCPP 2.0.1 device models the CSMS keeps: every change written through to the store
(one database transaction per NotifyReport, NotifyEvent or accepted SetVariables, bounded
there as in memory), and a copy held in memory for the chargers that report here.

The store is the record. The memory copy (``Registry.device_model``) is loaded from the
store the first time a charger's model changes after it connected here, and each change
is written to the store before it is applied to the copy (a failed write changes
neither). Readers (:meth:`DeviceModels.read`, the REST API) get the copy when this node
holds it, and otherwise the stored model: after a restart, or on a cluster node that
does not hold the charger, ``GET /chargers/{id}/device_model`` shows what was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio
from ocpp.v201 import call, call_result

from libv4e.csms._devicemodel import (
    MAX_EVENTS,
    MAX_VARIABLES,
    DeviceModel,
    ReportedVariable,
    VariableKey,
    variable_key,
)
from libv4e.csms._registry import Registry
from libv4e.csms._store import DeviceModelStore, StoreError
from libv4e.protocol._fields import field as _get
from libv4e.protocol._fields import text as _text

log = logging.getLogger("libv4e.csms")


def _accepted_values(
    request: call.SetVariables, answer: call_result.SetVariables
) -> list[tuple[VariableKey, str | None]]:
    """The (key, value) pairs of ``request`` that ``answer`` says were Accepted."""
    asked: dict[VariableKey, str | None] = {}
    for data in request.set_variable_data or ():
        key = _key_of(data)
        value = _get(data, "attribute_value")
        asked[key] = None if value is None else str(value)
    out = []
    for result in _get(answer, "set_variable_result") or ():
        if _text(_get(result, "attribute_status")) != "Accepted":
            continue
        key = _key_of(result)
        if key in asked:
            out.append((key, asked[key]))
    return out


def _key_of(data: Any) -> VariableKey:
    return variable_key(
        _get(data, "component"), _get(data, "variable"), _text(_get(data, "attribute_type"))
    )


class DeviceModels:
    """The 2.0.1 chargers' device models: stored, and held in memory (in ``registry``)
    for the chargers that report here. ``trusted(cp_id)``: whether this node's memory
    copy is the newest (always on a single node; in a cluster, while the charger is
    connected here)."""

    def __init__(
        self,
        store: DeviceModelStore,
        registry: Registry,
        *,
        trusted: Callable[[str], bool],
        max_variables: int = MAX_VARIABLES,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self.store = store
        self.registry = registry
        self.trusted = trusted
        self.max_variables = max_variables
        self.max_events = max_events
        self._locks: dict[str, trio.Lock] = {}

    def _lock(self, cp_id: str) -> trio.Lock:
        lock = self._locks.get(cp_id)
        if lock is None:
            lock = self._locks[cp_id] = trio.Lock()
        return lock

    async def read(self, cp_id: str) -> DeviceModel:
        """The charger's model: the memory copy when this node holds the newest, else
        the stored one (empty if it reported nothing)."""
        held = self.registry.held_device_model(cp_id)
        if held is not None and self.trusted(cp_id):
            return held
        return await self.store.device_model(cp_id)

    def connected(self, cp_id: str) -> None:
        """The charger (re)connected here: its model is loaded from the store again at
        its first change (another node may have written it meanwhile)."""
        self.registry.drop_device_model(cp_id)

    async def _held(self, cp_id: str) -> DeviceModel:
        """The memory copy, loaded from the store if not held (under the charger's lock)."""
        held = self.registry.held_device_model(cp_id)
        if held is None:
            stored = await self.store.device_model(cp_id)
            held = DeviceModel(max_variables=self.max_variables, max_events=self.max_events)
            held.apply(list(stored.variables.values()), list(stored.events))
            held.dropped = stored.dropped
            self.registry.hold_device_model(cp_id, held)
        return held

    async def _write(
        self,
        cp_id: str,
        plan: Callable[[DeviceModel], tuple[Sequence[ReportedVariable], Sequence[Any]]],
    ) -> None:
        """Plan a change on the charger's model, write it to the store, then apply it."""
        async with self._lock(cp_id):
            model = await self._held(cp_id)
            variables, events = plan(model)
            if not variables and not events:
                return
            await self.store.save_device_model(
                cp_id,
                variables,
                events,
                max_variables=self.max_variables,
                max_events=self.max_events,
            )
            model.apply(variables, events)

    async def report(self, cp_id: str, report_data: list[Any] | None) -> None:
        """A NotifyReport's ``reportData``: stored, then held."""
        await self._write(cp_id, lambda model: (model.plan_report(report_data), ()))

    async def event(self, cp_id: str, event_data: list[Any], generated_at: str) -> None:
        """A NotifyEvent's ``eventData``: stored, then held."""
        await self._write(cp_id, lambda model: model.plan_event(event_data, generated_at))

    async def answered(self, cp_id: str, request: Any, answer: Any) -> None:
        """A 2.0.1 call this node sent and its answer: the values of a SetVariables the
        station Accepted become the stored values (``source`` SetVariables). A store
        failure is logged: the station has the value, and its next report says so."""
        if not isinstance(request, call.SetVariables):
            return
        if not isinstance(answer, call_result.SetVariables):
            return
        values = _accepted_values(request, answer)
        if not values:
            return
        try:
            await self._write(cp_id, lambda model: (model.plan_set(values), ()))
        except StoreError as exc:
            log.warning("%s: the variables it accepted could not be stored: %s", cp_id, exc)
