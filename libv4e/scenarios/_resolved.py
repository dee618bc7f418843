"""What "resolved" means, shared by the diagnosis (``healthy`` / seen working), the scenario
runs (phase ``resolved``) and ``GET /demo/scenarios`` (``resolved_when``).

A connector is seen working for a driver when a session of the driver's card delivers:

- **energy**: an accepted StartTransaction, then MeterValues of that session whose energy
  register is above the StartTransaction's ``meterStart``;
- **power** (when power is measured): delivered power at least
  :data:`RESOLVED_POWER_RATIO` of the offered power;
- **released** (the driver leaves): an UnlockConnector answered ``Unlocked`` and the
  connector ``Available`` / ``NoError`` again;
- **back** (a charger that was offline): a BootNotification, then heartbeats again.

The diagnosis answers ``healthy`` only on such evidence; a scenario run leaves
``remediating`` only on the same evidence, so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

RESOLVED_POWER_RATIO = 0.5
"""Delivered power at or above this share of the offered power is normal."""


def energy_wh(payload: dict[str, Any]) -> float | None:
    """The last energy register (Wh) in a MeterValues payload, if any."""
    found = None
    for mv in payload.get("meterValue") or []:
        for sv in mv.get("sampledValue") or []:
            if sv.get("measurand", "Energy.Active.Import.Register") != (
                "Energy.Active.Import.Register"
            ):
                continue
            try:
                value = float(sv["value"])
            except (KeyError, TypeError, ValueError):
                continue
            found = value * 1000 if sv.get("unit") == "kWh" else value
    return found


def energy_above(payload: dict[str, Any], meter_start: float | None) -> bool:
    """Whether a MeterValues payload shows energy above ``meter_start`` (Wh)."""
    value = energy_wh(payload)
    return value is not None and meter_start is not None and value > meter_start


def power_normal(power_w: float | None, offered_w: float | None) -> bool:
    """Delivered power normal for what is offered."""
    return bool(power_w is not None and offered_w and power_w >= RESOLVED_POWER_RATIO * offered_w)
