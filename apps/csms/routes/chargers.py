"""Charge points: their state, message log, local list, firmware, charging profiles and
HTTP Basic passwords (``/status``, ``/chargers/...``)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from libv4e.csms import CentralSystem, ProfileStatus, SpokenNames

from ..errors import ApiError, body, int_arg
from ..models import PasswordBody, SpokenNamesBody
from .common import charger_or_404, describe


def blueprint(csms: CentralSystem) -> Blueprint:
    """The charge point routes over ``csms``."""
    bp = Blueprint("chargers", __name__)

    @bp.get("/status")
    async def status() -> Any:
        """Every known charge point's state, and how many are connected and online."""
        at = csms.clock()
        return {
            "total_connected": len(csms.all_connected_ids),
            "total_online": len(csms.registry.online_ids(at)),
            "total_known": len(csms.registry),
            "charge_points": {d["cp_id"]: d for d in describe(csms, csms.registry)},
        }

    @bp.get("/chargers")
    async def chargers() -> Any:
        """Every known charge point (a list)."""
        return {"chargers": describe(csms, csms.registry)}

    @bp.get("/chargers/<cp_id>")
    async def charger(cp_id: str) -> Any:
        """One charge point's state."""
        return describe(csms, [charger_or_404(csms, cp_id)])[0]

    @bp.get("/chargers/<cp_id>/device_model")
    async def device_model(cp_id: str) -> Any:
        """What an OCPP 2.0.1 charger reported of its device model (NotifyReport) and its
        latest events (NotifyEvent), as stored (the same after a restart, and on every
        node of a cluster); empty for a 1.6 charger."""
        state = charger_or_404(csms, cp_id)
        model = (await csms.device_models.read(cp_id)).as_dict()
        return {"cp_id": cp_id, "ocpp_version": state.ocpp_version, **model}

    @bp.delete("/chargers/<cp_id>")
    async def delete_charger(cp_id: str) -> Any:
        """Forget a charger that is not connected (its transactions, message log and
        password stay); 409 while it is connected."""
        await csms.delete_charger(cp_id)  # 404 unknown, 409 connected: translate_error
        return {"cp_id": cp_id, "deleted": True}

    @bp.get("/chargers/<cp_id>/spoken_names")
    async def spoken_names(cp_id: str) -> Any:
        """What people on site call the charger and its connectors (said instead of ids
        in every diagnosis ``say`` line); null / empty: the default words."""
        charger_or_404(csms, cp_id)
        names = await csms.store.spoken_names(cp_id) or SpokenNames(cp_id)
        return names.as_dict()

    @bp.put("/chargers/<cp_id>/spoken_names")
    @body(SpokenNamesBody)
    async def set_spoken_names(cp_id: str, data: SpokenNamesBody) -> Any:
        """Set the spoken names of a charger and its connectors ("bay 3", "bay 3, left
        plug"), replacing the previous ones; stored, so every restart and every cluster
        node says the same."""
        charger_or_404(csms, cp_id)
        names = SpokenNames(cp_id, data.charger, {int(k): v for k, v in data.connectors.items()})
        await csms.store.save_spoken_names(names)
        return names.as_dict()

    @bp.get("/chargers/<cp_id>/messages")
    async def messages(cp_id: str) -> Any:
        """The OCPP message log of one charger, newest first (?limit=50&offset=0&action=)."""
        charger_or_404(csms, cp_id)
        limit = int_arg("limit", 50, 1, 1000)
        offset = int_arg("offset", 0, 0, 10**9)
        await csms.flush_log()
        rows = await csms.store.messages(
            cp_id, limit=limit, offset=offset, action=request.args.get("action")
        )
        return {"cp_id": cp_id, "limit": limit, "offset": offset, "messages": rows}

    @bp.get("/chargers/<cp_id>/local_list")
    async def local_list(cp_id: str) -> Any:
        """What the CSMS sent to this charger's local list: the version accepted, the list
        the charger is believed to hold (``complete`` once a Full update was accepted), the
        version it last reported (GetLocalListVersion) and the last updates with their
        answers; ``csms_list_version`` is the CSMS's own list version."""
        state = csms.local_lists.get(cp_id)
        if state is None:
            charger_or_404(csms, cp_id)
            state = csms.local_lists.of(cp_id)
        return {**state.as_dict(), "csms_list_version": csms.auth.version}

    @bp.get("/chargers/<cp_id>/firmware")
    async def firmware(cp_id: str) -> Any:
        """Firmware and diagnostics of one charger: the last status it reported for each
        (FirmwareStatusNotification, DiagnosticsStatusNotification), and the last
        UpdateFirmware and GetDiagnostics sent with the progress reported since."""
        state = csms.firmware.get(cp_id)
        if state is None:
            charger_or_404(csms, cp_id)
            state = csms.firmware.of(cp_id)
        return state.as_dict()

    @bp.get("/chargers/<cp_id>/charging_profiles")
    async def charging_profiles(cp_id: str) -> Any:
        """The charging profiles the CSMS set on this charger: by default those it believes
        installed (``?status=`` Installed, Pending, Rejected, NotSupported, Unanswered,
        Cleared, Replaced, Ended, or ``all``), newest first, with what limits each
        connector now as the CSMS believes."""
        charger_or_404(csms, cp_id)
        status = request.args.get("status", "Installed")
        allowed = {"all", *ProfileStatus}
        if status not in allowed:
            raise ApiError(400, "bad_query", f"status must be one of {', '.join(sorted(allowed))}")
        limit = int_arg("limit", 100, 1, 1000)
        offset = int_arg("offset", 0, 0, 10**9)
        await csms.operator.sweep_charging_profiles()
        records = await csms.store.charging_profiles(
            cp_id=cp_id, status=None if status == "all" else status, limit=limit, offset=offset
        )
        state = csms.registry.get(cp_id)
        connectors = sorted(
            {0, *(r.connector_id for r in records), *(state.connectors if state else {})}
        )
        return {
            "cp_id": cp_id,
            "status": status,
            "charging_profiles": [r.as_dict() for r in records],
            "limits": [await csms.operator.believed_schedule(cp_id, c) for c in connectors],
        }

    # -- charger passwords (Security Profile 1/2) --------------------------------------------

    @bp.put("/chargers/<cp_id>/password")
    @body(PasswordBody)
    async def set_password(cp_id: str, data: PasswordBody) -> Any:
        """Set a charger's HTTP Basic password (stored hashed; the charger's username is its
        id). Takes effect at its next connection."""
        try:
            await csms.passwords.set(cp_id, data.password)
        except ValueError as exc:
            raise ApiError(422, "invalid_body", str(exc)) from exc
        return {"cp_id": cp_id, "password_set": True}

    @bp.delete("/chargers/<cp_id>/password")
    async def delete_password(cp_id: str) -> Any:
        """Remove a charger's password (it may then connect without one, unless passwords
        are required for all)."""
        if not csms.passwords.has(cp_id):
            raise ApiError(404, "no_password", f"{cp_id} has no password")
        await csms.passwords.set(cp_id, None)
        return {"cp_id": cp_id, "password_set": False}

    return bp
