"""The simulator's subcommand: ``v4e sim`` runs simulated chargers against a central
system. :func:`add_parser` adds it to the ``v4e`` parser (:mod:`libv4e_apps.cli`);
:func:`sim_options` and :func:`fleet_config` serve ``v4e up`` too."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import trio

from ..runtime import add, client_tls, until_signal


def add_parser(sub: Any) -> None:
    """Add ``sim`` to the ``v4e`` parser."""
    p = sub.add_parser("sim", help=cmd_sim.__doc__, description=cmd_sim.__doc__)
    sim_options(p, standalone=True)
    p.set_defaults(func=cmd_sim)


def sim_options(p: argparse.ArgumentParser, *, standalone: bool) -> None:
    if standalone:
        add(p, "--url", "CSMS_URL", "ws://localhost:9000", "central system URL")
    add(p, "--id", "CP_ID", "EVSE001", "charge point id (the first, with --count)")
    add(p, "--count", "SIM_COUNT", 1, "number of chargers", type=int)
    add(p, "--connectors", "CONNECTORS", 1, "connectors per charger", type=int)
    add(p, "--power-kw", "POWER_KW", 22.0, "maximum power per connector (kW)", type=float)
    add(
        p,
        "--heartbeat",
        "SIM_HEARTBEAT",
        None,
        "heartbeat interval until the CSMS sets one (s)",
        type=int,
    )
    add(
        p,
        "--state-dir",
        "SIM_STATE_DIR",
        None,
        "keep each charger's state (like a real charger's flash) in this directory; after "
        "a restart, interrupted sessions are stopped with reason PowerLoss",
    )
    add(
        p,
        "--ocpp",
        "SIM_OCPP",
        "1.6",
        "the OCPP version the chargers speak: 1.6, 2.0.1, or mixed (every second charger 2.0.1)",
        type=_ocpp_choice,
    )
    add(p, "--auto-charge", "AUTO_CHARGE", None, "plug in and charge with this id tag on start")
    add(p, "--password", "CP_PASSWORD", None, "HTTP Basic password (Security Profile 1/2)")
    add(p, "--ca-cert", "CA_CERT", None, "CA certificate (PEM) to trust for wss://")


def cmd_sim(args: argparse.Namespace) -> None:
    """Run simulated chargers against a central system."""
    from libv4e import serve_fleet

    async def main(nursery: trio.Nursery) -> None:
        await nursery.start(serve_fleet, fleet_config(args, args.url))

    trio.run(until_signal, main)


def _ocpp_choice(text: str) -> str:
    """``--ocpp``: ``mixed``, or a version ``OcppVersion`` knows (its label)."""
    from libv4e.protocol import OcppVersion

    if text.strip().lower() == "mixed":
        return "mixed"
    try:
        return OcppVersion.parse(text).label
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or mixed") from None


def fleet_config(args: argparse.Namespace, url: str) -> Any:
    from libv4e import FleetConfig

    fleet = FleetConfig.from_first_id(
        url=url,
        first_id=args.id,
        count=args.count,
        connectors=args.connectors,
        max_power_kw=args.power_kw,
        heartbeat_interval=args.heartbeat,
        auto_charge_tag=args.auto_charge,
        basic_auth_password=getattr(args, "password", None),
        state_dir=args.state_dir,
        ssl_context=client_tls(args),
    )
    wanted = getattr(args, "ocpp", "1.6")
    if wanted == "1.6":
        return fleet
    chargers = tuple(
        dataclasses.replace(c, ocpp_version="2.0.1" if wanted == "2.0.1" or i % 2 == 1 else "1.6")
        for i, c in enumerate(fleet.chargers)
    )
    return dataclasses.replace(fleet, chargers=chargers)
