"""The CSMS's authorization list (``/id_tags``)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from libv4e.csms import CentralSystem, IdTag

from ..errors import body
from ..models import AuthorizationEntry, IdTagBody, SendLocalListBody
from .common import aware


def blueprint(csms: CentralSystem) -> Blueprint:
    """The authorization list routes over ``csms``."""
    bp = Blueprint("id_tags", __name__)

    @bp.get("/id_tags")
    async def id_tags() -> Any:
        """The CSMS's authorization list and its version."""
        return {
            "list_version": csms.auth.version,
            "unknown_tags": str(csms.auth.unknown),
            "id_tags": [t.as_dict() for t in csms.auth],
        }

    @bp.post("/id_tags")
    @body(IdTagBody)
    async def add_id_tag(data: IdTagBody) -> Any:
        """Add or update an id tag (not pushed to chargers; see send_local_list)."""
        tag = tag_from(data)
        version = await csms.upsert_tag(tag)
        return {"list_version": version, "id_tag": tag.as_dict()}, 201

    @bp.delete("/id_tags/<id_tag>")
    async def delete_id_tag(id_tag: str) -> Any:
        """Remove an id tag from the CSMS's list."""
        version = await csms.remove_tag(id_tag)  # 404 if unknown: translate_error
        return {"list_version": version, "removed": id_tag}

    return bp


def tag_from(data: IdTagBody | SendLocalListBody) -> IdTag:
    """The id tag a request body names."""
    assert data.id_tag is not None
    return IdTag(
        data.id_tag, data.status or "Accepted", aware(data.expiry_date), data.parent_id_tag
    )


def entry_tag(entry: AuthorizationEntry) -> IdTag:
    """The id tag of a local authorization list entry (which has its ``id_tag_info``)."""
    info = entry.id_tag_info
    assert info is not None
    return IdTag(entry.id_tag, info.status, aware(info.expiry_date), info.parent_id_tag)
