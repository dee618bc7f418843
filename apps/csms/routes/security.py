"""The OCPP 1.6 security extension over REST: a charger's security record, its security
events, the profile the CSMS requires of it and AuthorizationKey rotation. (The security
commands — InstallCertificate, GetInstalledCertificateIds, DeleteCertificate,
ExtendedTriggerMessage, SignedUpdateFirmware, GetLog — are ``POST /commands/{name}/{cp_id}``
like the others.)"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from libv4e.csms import CentralSystem

from ..errors import ApiError, body, int_arg
from ..models import AuthorizationKeyBody, SecurityProfileBody
from .common import answered, charger_or_404, relay


def blueprint(csms: CentralSystem) -> Blueprint:
    """The security routes over ``csms``."""
    bp = Blueprint("security", __name__)
    center = csms.security

    def known(cp_id: str) -> None:
        if center.book.get(cp_id) is None:
            charger_or_404(csms, cp_id)

    @bp.get("/chargers/<cp_id>/security")
    async def security(cp_id: str) -> Any:
        """The charger's security record: the profile the CSMS requires of it, the
        certificates it holds as far as the CSMS knows (with ``expires_in_days``), the
        last SignedUpdateFirmware and GetLog with their progress, when its
        AuthorizationKey was last rotated."""
        known(cp_id)
        now = csms.clock()
        return {"cp_id": cp_id, **center.book.of(cp_id).summary(now), "ca": csms.ca is not None}

    @bp.get("/chargers/<cp_id>/security_events")
    async def security_events(cp_id: str) -> Any:
        """The security events the charger reported (SecurityEventNotification), newest
        first; ``critical`` follows the whitepaper's table."""
        limit = int_arg("limit", 100, 1, 500)
        events, count = await center.events(cp_id, limit)
        if not events:
            known(cp_id)
        return {"cp_id": cp_id, "events": [e.as_dict() for e in events], "count": count}

    @bp.put("/chargers/<cp_id>/security_profile")
    @body(SecurityProfileBody)
    async def set_profile(cp_id: str, data: SecurityProfileBody) -> Any:
        """Set the security profile the CSMS requires of this charger (1, 2 or 3); from its
        next connection, one below it is refused. Profile 3 needs the CSMS's charger CA.
        To move the charger itself, send ChangeConfiguration SecurityProfile."""
        if data.profile == 3 and csms.ca is None:
            raise ApiError(
                422,
                "security_policy",
                "security profile 3 needs a charger CA (--charger-ca-cert/--charger-ca-key)",
            )
        state = await center.set_profile(cp_id, data.profile)
        return {"cp_id": cp_id, **state.summary(csms.clock())}

    @bp.post("/chargers/<cp_id>/authorization_key")
    @body(AuthorizationKeyBody)
    async def rotate_key(cp_id: str, data: AuthorizationKeyBody) -> Any:
        """Rotate the charger's AuthorizationKey: ChangeConfiguration with a new key (40
        random hex digits unless given); once Accepted it is the charger's password and the
        old one stays valid for the reconnect window only. The key is never echoed, logged
        or kept in clear."""
        outcome = await center.rotate_key(cp_id, data.key)
        try:
            result = await relay(cp_id, answered(outcome))
        except ApiError as exc:
            exc.extra.update(outcome.records)
            raise
        return {"cp_id": cp_id, "action": "ChangeConfiguration", **result, **outcome.records}

    return bp
