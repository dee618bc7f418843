"""The site's spoken names for a charger and its connectors ("bay 3", "bay 3, left
plug"): what a voice agent says instead of ids. One record per charger, kept in the
store (SQLite or PostgreSQL), so every node of a cluster and every restart says the same."""

from __future__ import annotations

import dataclasses

__all__ = ["MAX_ALIAS_CHARS", "MAX_ALIAS_WORDS", "SpokenNames"]

MAX_ALIAS_CHARS = 40
MAX_ALIAS_WORDS = 6


@dataclasses.dataclass
class SpokenNames:
    """How people on site call ``cp_id`` (``charger``) and its connectors
    (``connectors``: connector id → name). None / missing: the default words ("the
    charger", "this plug")."""

    cp_id: str
    charger: str | None = None
    connectors: dict[int, str] = dataclasses.field(default_factory=dict)

    def spoken(self, connector_id: int | None) -> str | None:
        """The name for a connector (its own, else the charger's), or for the charger
        (``connector_id`` None or 0)."""
        if connector_id:
            return self.connectors.get(connector_id) or self.charger
        return self.charger

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the shape ``PUT /chargers/{cp_id}/spoken_names`` takes)."""
        return {
            "cp_id": self.cp_id,
            "charger": self.charger,
            "connectors": {str(k): v for k, v in sorted(self.connectors.items())},
        }
