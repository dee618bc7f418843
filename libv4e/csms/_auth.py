"""The central system's authorization list of id tags (plain state, no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from ocpp.v16 import datatypes, enums

from libv4e._errors import UnknownTagError
from libv4e.csms._registry import iso


class UnknownTagPolicy(StrEnum):
    """How tags missing from the list are answered."""

    ACCEPT = "accept"  # the seed's USER123 works out of the box
    REJECT = "reject"  # answered Invalid


@dataclasses.dataclass(slots=True)
class IdTag:
    """One entry of the authorization list."""

    id_tag: str
    status: str = "Accepted"
    expiry: dt.datetime | None = None
    parent_id_tag: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id_tag": self.id_tag,
            "status": self.status,
            "expiry_date": None if self.expiry is None else iso(self.expiry),
            "parent_id_tag": self.parent_id_tag,
        }

    def info(self, now: dt.datetime) -> datatypes.IdTagInfo:
        """The ``idTagInfo`` to answer with at ``now`` (Expired once past the expiry)."""
        status = self.status
        if status == "Accepted" and self.expiry is not None and self.expiry <= now:
            status = "Expired"
        return datatypes.IdTagInfo(
            status=enums.AuthorizationStatus(status),
            parent_id_tag=self.parent_id_tag,
            expiry_date=None if self.expiry is None else iso(self.expiry),
        )


class AuthorizationList:
    """Id tags with their status, and a version that increases on every change.

    The version is what SendLocalList carries to chargers, so a charger's local list can be
    compared with the CSMS's (GetLocalListVersion).
    """

    def __init__(
        self, *, unknown: UnknownTagPolicy = UnknownTagPolicy.ACCEPT, version: int = 0
    ) -> None:
        self.unknown = UnknownTagPolicy(unknown)
        self.version = version
        self._tags: dict[str, IdTag] = {}

    def __iter__(self) -> Iterator[IdTag]:
        return iter(sorted(self._tags.values(), key=lambda t: t.id_tag))

    def __len__(self) -> int:
        return len(self._tags)

    def get(self, id_tag: str) -> IdTag | None:
        """The entry for ``id_tag``, if listed."""
        return self._tags.get(id_tag)

    def load(self, tags: list[IdTag], version: int) -> None:
        """Replace the whole list (e.g. from a store) without bumping the version."""
        self._tags = {t.id_tag: t for t in tags}
        self.version = version

    def upsert(self, tag: IdTag) -> int:
        """Add or update a tag; returns the new list version."""
        if tag.status not in enums.AuthorizationStatus._value2member_map_:
            raise ValueError(f"unknown authorization status {tag.status!r}")
        self._tags[tag.id_tag] = tag
        self.version += 1
        return self.version

    def remove(self, id_tag: str) -> int:
        """Remove a tag (UnknownTagError if absent); returns the new list version."""
        if self._tags.pop(id_tag, None) is None:
            raise UnknownTagError(id_tag)
        self.version += 1
        return self.version

    def authorize(self, id_tag: str, now: dt.datetime) -> datatypes.IdTagInfo:
        """The answer to Authorize / StartTransaction for ``id_tag``."""
        tag = self._tags.get(id_tag)
        if tag is not None:
            return tag.info(now)
        if self.unknown is UnknownTagPolicy.ACCEPT:
            return datatypes.IdTagInfo(status=enums.AuthorizationStatus.accepted)
        return datatypes.IdTagInfo(status=enums.AuthorizationStatus.invalid)
