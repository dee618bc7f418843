"""Many simulated chargers in one process: one task each, under one nursery."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections import Counter
from typing import TextIO

import trio

from libv4e.charger._charger import Charger, ChargerConfig

log = logging.getLogger("libv4e.fleet")


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    """A fleet: the CSMS URL and one :class:`ChargerConfig` per charger."""

    url: str
    chargers: tuple[ChargerConfig, ...]
    summary_interval: float = 1.0
    ramp_per_second: float | None = None
    """Connect at most this many chargers per second (None: all at once)."""

    @classmethod
    def from_first_id(
        cls,
        *,
        url: str,
        first_id: str = "EVSE001",
        count: int = 1,
        connectors: int = 1,
        max_power_kw: float = 22.0,
        heartbeat_interval: int | None = None,
        auto_charge_tag: str | None = None,
        state_dir: str | None = None,
        **extra: object,
    ) -> FleetConfig:
        """``EVSE001`` with count 3 → EVSE001, EVSE002, EVSE003 (the number keeps its
        width; an id without a trailing number gets ``-1``, ``-2``, … after the first).
        With ``state_dir``, each charger keeps its persistent state in
        ``<state_dir>/<id>.json``."""
        return cls(
            url=url,
            chargers=tuple(
                ChargerConfig(
                    cp_id=cp_id,
                    connectors=connectors,
                    max_power_kw=max_power_kw,
                    heartbeat_interval=heartbeat_interval,
                    auto_charge_tag=auto_charge_tag,
                    state_path=f"{state_dir}/{cp_id}.json" if state_dir else None,
                    **extra,  # type: ignore[arg-type]
                )
                for cp_id in fleet_ids(first_id, count)
            ),
        )


def fleet_ids(first_id: str, count: int) -> list[str]:
    """The ids of a fleet that starts at ``first_id``."""
    match = re.match(r"^(.*?)(\d+)$", first_id)
    if match is None:
        return [first_id] + [f"{first_id}-{i}" for i in range(1, count)]
    prefix, digits = match.groups()
    start, width = int(digits), len(digits)
    return [f"{prefix}{n:0{width}d}" for n in range(start, start + count)]


def summary_line(chargers: list[Charger]) -> str:
    """``12 chargers: 10 online (3 charging, 1 faulted), 2 offline, 4 queued messages``."""
    states = Counter(c.summary() for c in chargers)
    online = len(chargers) - states["offline"]
    queued = sum(c.queued for c in chargers)
    return (
        f"{len(chargers)} chargers: {online} online ({states['charging']} charging, "
        f"{states['faulted']} faulted), {states['offline']} offline, {queued} queued messages"
    )


async def serve_fleet(
    config: FleetConfig,
    *,
    out: TextIO | None = None,
    task_status: trio.TaskStatus[list[Charger]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every charger of ``config`` until cancelled; reports the :class:`Charger` list.

    On a terminal a live one-line summary is kept on ``out`` (stderr by default); else a
    summary is logged when it changes.
    """
    chargers = [Charger(c) for c in config.chargers]
    out = out or sys.stderr
    async with trio.open_nursery() as nursery:
        for i, charger in enumerate(chargers):
            await nursery.start(charger.run, config.url)
            if config.ramp_per_second and i + 1 < len(chargers):
                await trio.sleep(1 / config.ramp_per_second)
        task_status.started(chargers)
        if len(chargers) > 1:
            nursery.start_soon(_summaries, chargers, out, config.summary_interval)


async def _summaries(chargers: list[Charger], out: TextIO, interval: float) -> None:
    last = ""
    tty = out.isatty()
    while True:
        await trio.sleep(interval)
        line = summary_line(chargers)
        if tty:
            out.write("\r\x1b[2K" + line)
            out.flush()
        elif line != last:
            log.info("%s", line)
        last = line
