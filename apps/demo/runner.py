"""``v4e demo``: play the fault scenarios against a backend with a scripted agent.

Wiring only: find (or start) a backend, hand a ScriptedAgent an HTTP client, print.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from typing import Any

import httpx
import trio
from rich.console import Console
from rich.table import Table

from libv4e import FleetConfig, serve_fleet

from ..csms.backend import BackendConfig, serve_backend
from .agent import Line, ScriptedAgent, fetch_scenarios

STYLES = {"driver": "bold yellow", "agent": "bold cyan", "api": "dim", "demo": "magenta"}
LABELS = {"driver": "Driver", "agent": "Agent ", "api": "  api ", "demo": "[demo]"}


def add_demo_parser(sub: Any) -> None:
    """Add the ``demo`` subcommand to the ``v4e`` parser."""
    p = sub.add_parser("demo", help=run.__doc__, description=run.__doc__)
    p.add_argument(
        "--url",
        default="http://localhost:8000",
        help="backend REST API (an embedded one starts if none answers)",
    )
    p.add_argument("--cp-id", default="EVSE001", help="charger to play on")
    p.add_argument("--scenario", action="append", help="play only this one (repeatable)")
    p.add_argument(
        "--offline-mode",
        choices=["silent", "dead"],
        default="silent",
        help="offline_charger: silent (a hard reset cures it) or dead (escalates)",
    )
    p.add_argument("--verbose", action="store_true", help="print API answers in full")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Play the five fault scenarios end to end with a scripted agent."""
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    logging.getLogger().setLevel(logging.WARNING)  # the conversation is the output
    return trio.run(_main, args, console)


async def _main(args: argparse.Namespace, console: Console) -> int:
    async with httpx.AsyncClient(base_url=args.url, timeout=30) as probe:
        try:
            await probe.get("/")
            return await _play(args, console, args.url)
        except httpx.HTTPError:
            console.print(
                f"No backend answers at {args.url}; starting an embedded one.", style="dim"
            )
    with tempfile.TemporaryDirectory() as tmp:
        config = BackendConfig(host="127.0.0.1", ws_port=0, api_port=0, db_path=f"{tmp}/demo.db")
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            fleet = FleetConfig.from_first_id(
                url=f"ws://127.0.0.1:{backend.ws_port}", first_id=args.cp_id
            )
            await nursery.start(serve_fleet, fleet)
            code = await _play(args, console, f"http://127.0.0.1:{backend.api_port}")
            nursery.cancel_scope.cancel()
    return code


async def _play(args: argparse.Namespace, console: Console, url: str) -> int:
    def say(line: Line) -> None:
        if line.who == "api":
            text = line.text
            if args.verbose and line.detail is not None:
                text += " " + json.dumps(line.detail)
            elif isinstance(line.detail, dict) and "status" in line.detail:
                text += f" status={line.detail['status']}"
            console.print(f"  {LABELS['api']} {text}", style=STYLES["api"], markup=False)
        else:
            console.print(f"{LABELS[line.who]}: {line.text}", style=STYLES[line.who], markup=False)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        agent = ScriptedAgent(client, say, cp_id=args.cp_id)
        if not await agent.until(agent.ready, 15):
            console.print(f"{args.cp_id} is not online at {url}.", style="bold red")
            return 2
        catalog = await fetch_scenarios(client)
        wanted = args.scenario or [s["name"] for s in catalog]
        unknown = set(wanted) - {s["name"] for s in catalog}
        if unknown:
            console.print(f"unknown scenario(s): {', '.join(sorted(unknown))}", style="bold red")
            return 2
        outcomes = []
        for spec in catalog:
            if spec["name"] not in wanted:
                continue
            console.rule(f"{spec['title']} ({spec['name']})")
            params = {"mode": args.offline_mode} if spec["name"] == "offline_charger" else {}
            if params.get("mode") == "dead":
                params["recover_after"] = 40
                agent.recovery_timeout = 8
            outcomes.append(await agent.play(spec["name"], spec["driver_says"], params=params))
            agent.recovery_timeout = 20
    table = Table(title="Demo results")
    for column in ("scenario", "diagnosed as", "actions", "result", "seconds"):
        table.add_column(column)
    for o in outcomes:
        style = "green" if o.ok else "red"
        table.add_row(
            o.scenario,
            ", ".join(o.diagnosed_as) or "-",
            ", ".join(o.actions) or "-",
            f"[{style}]{o.result}[/{style}]",
            f"{o.seconds:.1f}",
        )
    console.print(table)
    ok = all(o.ok for o in outcomes)
    console.print(
        "All scenarios handled." if ok else "Some scenarios were not handled.",
        style="bold green" if ok else "bold red",
    )
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(
        run(
            argparse.Namespace(
                url="http://localhost:8000",
                cp_id="EVSE001",
                scenario=None,
                offline_mode="silent",
                verbose=False,
            )
        )
    )
