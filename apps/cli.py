"""``v4e``: the one console script. Wiring only: options → libv4e objects → one nursery.

Each app holds its own subcommands (:mod:`libv4e_apps.csms.cli`, :mod:`libv4e_apps.simulator.cli`,
:mod:`libv4e_apps.demo.runner`); this module builds the parser from them, runs ``v4e up`` (the
CSMS and the simulator in one process) and dispatches. Every option has an environment
variable (shown in ``--help``); the command line wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

try:
    from .csms import cli as csms_cli
    from .demo.runner import add_demo_parser
    from .eval.runner import add_eval_parser
    from .runtime import add, check_db, run_server, setup_logging
    from .simulator import cli as sim_cli
except ModuleNotFoundError as exc:  # `pip install libv4e` is the library alone
    if exc.name is None or exc.name.partition(".")[0] in ("libv4e", "libv4e_apps"):
        raise
    raise ModuleNotFoundError(
        f"v4e needs the apps' dependencies ({exc.name} is missing): pip install 'libv4e[apps]'",
        name=exc.name,
    ) from exc


def cmd_up(args: argparse.Namespace) -> int:
    """Run everything in one process: CSMS, REST API and simulated EVSE001."""
    from libv4e import serve_fleet
    from libv4e.csms import is_postgres_url

    problem = check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.state_dir is None:  # the simulated chargers remember sessions across restarts
        args.state_dir = "v4e.chargers" if is_postgres_url(args.db) else f"{args.db}.chargers"

    async def main(nursery: trio.Nursery) -> None:
        backend = await csms_cli.start_backend(nursery, args)
        url = f"ws://127.0.0.1:{backend.ws_port}"
        await nursery.start(serve_fleet, sim_cli.fleet_config(args, url))
        print(f"Dashboard:  {backend.api_url}/dashboard")
        print(f"Simulated:  {args.id}" + (f" (+{args.count - 1} more)" if args.count > 1 else ""))
        print("Ctrl-C to stop.")

    return run_server(args, main)


def build_parser() -> argparse.ArgumentParser:
    """The ``v4e`` argument parser."""
    parser = argparse.ArgumentParser(prog="v4e", description="Voice4EVs backend")
    add(parser, "--log-level", "LOG_LEVEL", "INFO", "logging level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help=cmd_up.__doc__, description=cmd_up.__doc__)
    csms_cli.csms_options(p)
    sim_cli.sim_options(p, standalone=False)
    p.set_defaults(func=cmd_up)

    csms_cli.add_parser(sub)
    sim_cli.add_parser(sub)
    csms_cli.add_tool_parsers(sub)
    add_demo_parser(sub)
    add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``v4e`` console script."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
