"""The OCPP versions libv4e speaks, their websocket subprotocols, and the one table that
turns libv4e's error codes into each version's CallError codes.

OCPP-J 1.6 and 2.0.1 name a few of the same errors differently (1.6's
``FormationViolation`` and ``OccurenceConstraintViolation`` are 2.0.1's
``FormatViolation`` and ``OccurrenceConstraintViolation``), and 2.0.1 adds
``MessageTypeNotSupported`` and ``RpcFrameworkError`` for broken frames, which 1.6
reports as ``FormationViolation``. Code anywhere raises :class:`OcppError` with either
spelling; :meth:`OcppVersion.wire_error` (called by the session, and nowhere else) gives
the code the peer's version defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

from libv4e._errors import DEFAULT_DESCRIPTIONS, ErrorCode, OcppError


class OcppVersion(StrEnum):
    """An OCPP version; its value is its websocket subprotocol."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"

    @property
    def subprotocol(self) -> str:
        """The websocket subprotocol that selects this version (``ocpp2.0.1``)."""
        return self.value

    @property
    def label(self) -> str:
        """The version number as people write it (``2.0.1``)."""
        return self.value.removeprefix("ocpp")

    @property
    def package(self) -> str:
        """The ``ocpp`` package's subpackage of this version (``v201``)."""
        return "v16" if self is OcppVersion.V16 else "v201"

    @classmethod
    def parse(cls, text: str | OcppVersion) -> OcppVersion:
        """``"2.0.1"``, ``"ocpp2.0.1"``, ``"201"`` → :attr:`V201` (likewise for 1.6);
        raise ValueError for anything else."""
        if isinstance(text, OcppVersion):
            return text
        key = str(text).strip().lower().removeprefix("ocpp").removeprefix("v")
        for version in cls:
            if key in (version.label, version.label.replace(".", "")):
                return version
        raise ValueError(f"unknown OCPP version {text!r} (1.6 or 2.0.1)")

    def wire_code(self, code: ErrorCode | str) -> ErrorCode | str:
        """The CallError code this version defines for ``code`` (a code of the other
        version's spelling is translated; a code outside :class:`ErrorCode` is kept)."""
        if isinstance(code, ErrorCode):
            return _WIRE[self].get(code, code)
        return code

    def wire_error(self, error: OcppError) -> OcppError:
        """``error`` with its code spelled for this version (the same object if it
        already is); a default description follows the code."""
        code = self.wire_code(error.code)
        if code == error.code:
            return error
        description = error.description
        if isinstance(error.code, ErrorCode) and isinstance(code, ErrorCode):
            if description == DEFAULT_DESCRIPTIONS.get(error.code):
                description = DEFAULT_DESCRIPTIONS.get(code, description)
        return OcppError(code, description, error.details)


_WIRE: dict[OcppVersion, dict[ErrorCode, ErrorCode]] = {
    OcppVersion.V16: {
        ErrorCode.FORMAT_VIOLATION: ErrorCode.FORMATION_VIOLATION,
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: ErrorCode.FORMATION_VIOLATION,
        ErrorCode.RPC_FRAMEWORK_ERROR: ErrorCode.FORMATION_VIOLATION,
    },
    OcppVersion.V201: {
        ErrorCode.FORMATION_VIOLATION: ErrorCode.FORMAT_VIOLATION,
        ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION: ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    },
}
"""Per version: the codes it does not define → the code it uses for that error."""

DEFAULT_PREFERENCE: tuple[OcppVersion, ...] = (OcppVersion.V201, OcppVersion.V16)
"""The order a server prefers the versions in when a charger offers several."""


def versions(names: Iterable[str | OcppVersion]) -> tuple[OcppVersion, ...]:
    """Parse a server's preference list (``["ocpp2.0.1", "1.6"]``), without repeats."""
    found: list[OcppVersion] = []
    for name in names:
        version = OcppVersion.parse(name)
        if version not in found:
            found.append(version)
    if not found:
        raise ValueError("at least one OCPP version is needed")
    return tuple(found)


def negotiate(
    offered: Sequence[str], preference: Sequence[OcppVersion] = DEFAULT_PREFERENCE
) -> OcppVersion | None:
    """The first version of ``preference`` the peer ``offered`` (its subprotocols), or
    ``None`` if it offered none of them. The server's order decides, not the peer's."""
    for version in preference:
        if version.subprotocol in offered:
            return version
    return None
