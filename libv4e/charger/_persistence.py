"""What a simulated charger keeps across a restart, like a real one keeps it in flash:
configuration, local authorization list, availability, energy registers, and the sessions
that were running. Plain data ⇄ JSON, written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ocpp.v16 import datatypes

from libv4e.charger._model import (
    ChargingSession,
    Configuration,
    Connector,
    LocalAuthorization,
    Meter,
)
from libv4e.charger._security import ChargerSecurityState
from libv4e.protocol._convert import converter


class Persistent(Protocol):
    """What :func:`snapshot` reads: the parts of a charger that a real one keeps in flash."""

    @property
    def configuration(self) -> Configuration: ...
    @property
    def auth(self) -> LocalAuthorization: ...
    @property
    def connectors(self) -> Mapping[int, Connector]: ...
    @property
    def meters(self) -> Mapping[int, Meter]: ...
    @property
    def energy_at(self) -> Mapping[int, str]: ...
    @property
    def sessions(self) -> Mapping[int, ChargingSession]: ...
    @property
    def firmware_version(self) -> str: ...
    @property
    def security(self) -> ChargerSecurityState: ...


def snapshot(charger: Persistent) -> dict[str, Any]:
    """The charger's persistent state as JSON-ready data."""
    return {
        "configuration": {
            k: v.value for k, v in charger.configuration.keys.items() if not v.readonly
        },
        "local_list": {
            "version": charger.auth.version,
            "entries": {t: converter.unstructure(i) for t, i in charger.auth.entries.items()},
        },
        "inoperative": [c.connector_id for c in charger.connectors.values() if c.inoperative],
        "energy_wh": {str(i): m.energy_wh for i, m in charger.meters.items()},
        "energy_at": {str(i): at for i, at in charger.energy_at.items()},
        "sessions": [
            {
                "connector_id": s.connector_id,
                "id_tag": s.id_tag,
                "meter_start": s.meter_start,
                "started_at": s.started_at,
                "transaction_id": s.transaction_id,
            }
            for s in charger.sessions.values()
        ],
        "firmware_version": charger.firmware_version,
        "security": charger.security.as_dict(),
    }


def save(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a crash leaves the old or the new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def load(path: str | Path) -> dict[str, Any] | None:
    """The saved state, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def local_list_entries(data: dict[str, Any]) -> dict[str, datatypes.IdTagInfo]:
    """The saved local list entries as IdTagInfo objects."""
    entries = data.get("local_list", {}).get("entries", {})
    return {tag: converter.structure(info, datatypes.IdTagInfo) for tag, info in entries.items()}
