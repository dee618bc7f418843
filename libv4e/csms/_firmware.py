"""Firmware and diagnostics per charger (OCPP 1.6 Firmware Management): what the CSMS
asked (UpdateFirmware, GetDiagnostics) and what the charger reported since
(FirmwareStatusNotification, DiagnosticsStatusNotification). Plain state, no I/O; the CSMS
persists each change.

Each request's progress is the charger's reported status, in the order the specification
gives (:data:`FIRMWARE_PROGRESS`, :data:`DIAGNOSTICS_PROGRESS`); ``done`` marks a final one.
A status reported with no request outstanding (e.g. answering TriggerMessage) is recorded as
the charger's last status without a request."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from libv4e.csms._books import StatusChange, note
from libv4e.csms._registry import iso

FIRMWARE_PROGRESS: dict[str, bool] = {
    "Idle": False,
    "Downloading": False,
    "Downloaded": False,
    "Installing": False,
    "Installed": True,
    "DownloadFailed": True,
    "InstallationFailed": True,
}
"""FirmwareStatusNotification statuses → whether the update is over."""

DIAGNOSTICS_PROGRESS: dict[str, bool] = {
    "Idle": False,
    "Uploading": False,
    "Uploaded": True,
    "UploadFailed": True,
}
"""DiagnosticsStatusNotification statuses → whether the upload is over."""


@dataclasses.dataclass(slots=True)
class FirmwareRequest:
    """One UpdateFirmware, GetDiagnostics, SignedUpdateFirmware or GetLog the CSMS sent,
    and how it went."""

    kind: str
    """UpdateFirmware, GetDiagnostics, SignedUpdateFirmware or GetLog."""
    location: str
    sent_at: dt.datetime
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The request's other fields (retrieveDate, retries, ...), as sent."""
    answer: dict[str, Any] | None = None
    """The charger's answer (GetDiagnostics: the fileName)."""
    status: str | None = None
    """The last status the charger reported for it."""
    done: bool = False
    history: list[StatusChange] = dataclasses.field(default_factory=list)
    request_id: int | None = None
    """The requestId of a SignedUpdateFirmware or GetLog (security extension)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            **({} if self.request_id is None else {"request_id": self.request_id}),
            "location": self.location,
            "parameters": self.parameters,
            "sent_at": iso(self.sent_at),
            "answer": self.answer,
            "status": self.status,
            "done": self.done,
            "history": [h.as_dict() for h in self.history],
        }


@dataclasses.dataclass(slots=True)
class ChargerFirmware:
    """The CSMS's view of one charger's firmware and diagnostics."""

    cp_id: str
    firmware_status: str | None = None
    firmware_status_at: dt.datetime | None = None
    diagnostics_status: str | None = None
    diagnostics_status_at: dt.datetime | None = None
    update: FirmwareRequest | None = None
    """The last UpdateFirmware sent."""
    diagnostics: FirmwareRequest | None = None
    """The last GetDiagnostics sent."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cp_id": self.cp_id,
            "firmware_status": self.firmware_status,
            "firmware_status_at": _iso(self.firmware_status_at),
            "diagnostics_status": self.diagnostics_status,
            "diagnostics_status_at": _iso(self.diagnostics_status_at),
            "update_firmware": None if self.update is None else self.update.as_dict(),
            "get_diagnostics": None if self.diagnostics is None else self.diagnostics.as_dict(),
        }


class FirmwareBook:
    """Every charger's firmware and diagnostics state."""

    def __init__(self) -> None:
        self._chargers: dict[str, ChargerFirmware] = {}

    def __iter__(self) -> Iterator[ChargerFirmware]:
        return iter(sorted(self._chargers.values(), key=lambda s: s.cp_id))

    def load(self, states: list[ChargerFirmware]) -> None:
        """Replace the book's content (e.g. from a store)."""
        self._chargers = {s.cp_id: s for s in states}

    def get(self, cp_id: str) -> ChargerFirmware | None:
        """One charger's state, if anything was sent or reported."""
        return self._chargers.get(cp_id)

    def of(self, cp_id: str) -> ChargerFirmware:
        """One charger's state (created empty when unknown)."""
        state = self._chargers.get(cp_id)
        if state is None:
            state = self._chargers[cp_id] = ChargerFirmware(cp_id)
        return state

    def requested(
        self,
        cp_id: str,
        kind: str,
        location: str,
        parameters: dict[str, Any],
        now: dt.datetime,
    ) -> ChargerFirmware:
        """Record an UpdateFirmware / GetDiagnostics about to be sent."""
        request = FirmwareRequest(kind, location, now, parameters)
        note(request.history, StatusChange(now, "Requested", f"{kind} sent"))
        state = self.of(cp_id)
        if kind == "UpdateFirmware":
            state.update = request
        else:
            state.diagnostics = request
        return state

    @staticmethod
    def unanswered(request: FirmwareRequest, reason: str, now: dt.datetime) -> None:
        """The request got no answer: it is over, as Unanswered."""
        if request.status is None:
            request.status, request.done = "Unanswered", True
            note(request.history, StatusChange(now, "Unanswered", reason))

    def reported(self, cp_id: str, kind: str, status: str, now: dt.datetime) -> ChargerFirmware:
        """Record a FirmwareStatusNotification (``kind`` firmware) or a
        DiagnosticsStatusNotification (``diagnostics``)."""
        state = self.of(cp_id)
        if kind == "firmware":
            state.firmware_status, state.firmware_status_at = status, now
            request, final = state.update, FIRMWARE_PROGRESS.get(status, False)
        else:
            state.diagnostics_status, state.diagnostics_status_at = status, now
            request, final = state.diagnostics, DIAGNOSTICS_PROGRESS.get(status, False)
        if request is not None and not request.done and status != "Idle":
            request.status, request.done = status, final
            note(request.history, StatusChange(now, status))
        return state


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(value)
