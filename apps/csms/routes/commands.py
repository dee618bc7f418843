"""OCPP commands to chargers (``POST /commands/{name}/{cp_id}``), SendLocalList included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint
from quart_schema import hide

from libv4e import OcppError
from libv4e.csms import CentralSystem, IdTag
from libv4e.protocol import (
    CATALOGUES,
    OcppVersion,
    Role,
    from_json_payload,
    may_originate,
    validate,
)

from ..errors import ApiError, body
from ..models import (
    COMMANDS,
    Command,
    Ocpp201Payload,
    ReserveNowBody,
    SendLocalListBody,
    WithRequestId,
)
from .common import answered, charger_or_404, relay
from .id_tags import entry_tag, tag_from

COMMAND_NAMES = [*COMMANDS, "send_local_list"]
"""Every command the API can send."""

BOOKED_201 = {
    "RequestStartTransaction": "remote_start",
    "RequestStopTransaction": "remote_stop",
    "ReserveNow": "reserve_now",
    "CancelReservation": "cancel_reservation",
    "SendLocalList": "send_local_list",
    "SetChargingProfile": "set_charging_profile",
    "ClearChargingProfile": "clear_charging_profile",
    "UpdateFirmware": "update_firmware (or signed_update_firmware)",
    "GetLog": "get_diagnostics (or get_log)",
    "InstallCertificate": "install_certificate",
    "DeleteCertificate": "delete_certificate",
    "GetInstalledCertificateIds": "get_installed_certificate_ids",
    "CertificateSigned": "(none: the CSMS sends it after the station's SignCertificate)",
    "SetNetworkProfile": "(none: it would move the station's connection elsewhere)",
}
"""2.0.1 calls that change what the CSMS keeps (reservations, lists, profiles, firmware,
certificates, the connection): sent only through their command route, which records
them. Each names that route."""

RAW_201 = sorted(
    action
    for action in CATALOGUES[OcppVersion.V201].calls
    if may_originate(Role.CENTRAL_SYSTEM, action, OcppVersion.V201) and action not in BOOKED_201
)
"""The 2.0.1 calls ``POST /ocpp201/{action}/{cp_id}`` sends as they are."""


def blueprint(csms: CentralSystem) -> Blueprint:
    """The command routes over ``csms``."""
    bp = Blueprint("commands", __name__)

    async def send(cp_id: str, payload: Any) -> dict[str, Any]:
        """Send a command and record what it changes (:meth:`CentralSystem.operate`); the
        records touched are added to the answer, and to the error if it fails."""
        outcome = await csms.operate(cp_id, payload)
        try:
            result = await relay(cp_id, answered(outcome))
        except ApiError as exc:
            exc.extra.update(outcome.records)
            raise
        return {**result, **outcome.records}

    @bp.post("/commands/send_local_list/<cp_id>")
    @body(SendLocalListBody)
    async def send_local_list(cp_id: str, data: SendLocalListBody) -> Any:
        """OCPP SendLocalList: one card (upserted in the CSMS's list, pushed Differential),
        or a Full/Differential update with many entries, removals and an explicit version.
        The update and the charger's answer are recorded (GET /chargers/{cp_id}/local_list);
        a VersionMismatch answer comes with ``offer``, a Full update to send next."""
        if data.id_tag is None:
            return await _send_list_update(csms, cp_id, data)
        tag = tag_from(data)
        version = await csms.upsert_tag(tag)
        if not csms.reachable(cp_id):
            charger_or_404(csms, cp_id)
            raise ApiError(
                404,
                "charger_not_connected",
                f"charge point {cp_id} is not connected; the tag was saved in the CSMS's list",
                cp_id=cp_id,
                list_version=version,
            )
        result = await relay(cp_id, csms.push_tags(cp_id, [tag]))
        return {
            "cp_id": cp_id,
            "action": "SendLocalList",
            "list_version": version,
            "id_tag": tag.as_dict(),
            **result,
        }

    for name, model in COMMANDS.items():
        bp.add_url_rule(
            f"/commands/{name}/<cp_id>",
            f"command_{name}",
            _command_view(
                name,
                model,
                send,
                csms.reservations.allocate_id,
                csms.security.book.next_request_id,
            ),
            methods=["POST"],
        )

    @bp.post("/ocpp201/<action>/<cp_id>")
    @body(Ocpp201Payload)
    async def ocpp201_call(action: str, cp_id: str, data: Ocpp201Payload) -> Any:
        """Any OCPP 2.0.1 call to a 2.0.1 station, as it goes on the wire: the body is
        the request's JSON (checked against the action's schema), the answer the
        station's response JSON. For GetChargingProfiles, GetReport, GetTransactionStatus,
        the monitoring, display-message and customer-information calls… Calls that change
        what the CSMS keeps (reservations, local lists, profiles, firmware, certificates)
        answer 409 naming the command route that records them; a 1.6 charger answers
        409 ``unsupported_for_version``."""
        if action in BOOKED_201:
            raise ApiError(
                409,
                "use_command_route",
                f"{action} changes what the CSMS keeps: send it with POST "
                f"/commands/{BOOKED_201[action]}, which records it",
                action=action,
            )
        if action not in RAW_201:
            raise ApiError(
                404, "unknown_action", f"{action!r} is not a 2.0.1 call", actions=RAW_201
            )
        try:
            validate("call", action, data.root, OcppVersion.V201)
            payload = from_json_payload(CATALOGUES[OcppVersion.V201].calls[action], data.root)
        except OcppError as exc:
            raise ApiError(422, "invalid_body", exc.description) from exc  # names the action
        result = await send(cp_id, payload)
        return {"cp_id": cp_id, "action": action, **result}

    @bp.post("/commands/<name>/<cp_id>")
    @hide  # not an operation: the answer for names that are none (404, listing them)
    async def unknown_command(name: str, cp_id: str) -> Any:
        """Any other command name is unknown."""
        raise ApiError(404, "unknown_command", f"unknown command {name!r}", commands=COMMAND_NAMES)

    return bp


async def _send_list_update(csms: CentralSystem, cp_id: str, data: SendLocalListBody) -> Any:
    assert data.update_type is not None
    entries = data.local_authorization_list
    upserts = None if entries is None else [entry_tag(e) for e in entries if e.id_tag_info]
    removals = [e.id_tag for e in entries or [] if e.id_tag_info is None]

    async def exchange(update_type: str, ups: list[IdTag] | None, version: int | None) -> Any:
        result, charger, update = await csms.operator.send_local_list(
            cp_id,
            update_type,
            ups,
            removals if update_type == "Differential" else (),
            list_version=version,
            update_csms_list=data.update_csms_list,
        )
        return {
            "status": str(result.status),
            "update": update.as_dict(),
            "local_list": charger.as_dict(entries=False),
        }

    answer = await relay(cp_id, exchange(data.update_type, upserts, data.list_version))
    answer = {
        "cp_id": cp_id,
        "action": "SendLocalList",
        "list_version": answer["update"]["list_version"],
        "update_type": data.update_type,
        **answer,
    }
    if answer["status"] == "VersionMismatch":
        offer = csms.operator.full_update_offer(cp_id)
        answer["offer"] = offer
        if data.on_version_mismatch == "send_full":
            answer["full_update"] = await relay(
                cp_id, exchange("Full", None, offer["list_version"])
            )
    return answer


def _command_view(
    name: str,
    model: type[Command],
    send: Callable[[str, Any], Awaitable[dict[str, Any]]],
    allocate_reservation_id: Callable[[], int],
    allocate_request_id: Callable[[], int],
) -> Callable[..., Awaitable[Any]]:
    @body(model)
    async def view(cp_id: str, data: Command) -> Any:
        try:
            if isinstance(data, ReserveNowBody) and data.reservation_id is None:
                payload = data.to_ocpp(allocate_reservation_id())
            elif isinstance(data, WithRequestId) and data.request_id is None:
                payload = data.with_request_id(allocate_request_id())
            else:
                payload = data.to_ocpp()
        except OcppError as exc:
            raise ApiError(422, "invalid_body", f"{name}: {exc.description}") from exc
        result = await send(cp_id, payload)
        return {"cp_id": cp_id, "action": type(payload).__name__, **result}

    view.__doc__ = f"{model.__doc__} Answers with the charger's OCPP response."
    view.__name__ = f"command_{name}"
    wrapped: Callable[..., Awaitable[Any]] = view
    return wrapped
