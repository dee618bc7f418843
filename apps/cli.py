"""``v4e``: the one console script. Wiring only: options → libv4e objects → one nursery.

Every option has an environment variable (shown in ``--help``); the command line wins.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

ENV_PREFIX = "V4E_"


def _env(name: str, default: Any) -> Any:
    return os.environ.get(ENV_PREFIX + name, default)


def _add(
    parser: argparse.ArgumentParser, flag: str, env: str, default: Any, help: str, **kw: Any
) -> None:
    parser.add_argument(
        flag,
        default=_env(env, default),
        help=f"{help} (env {ENV_PREFIX}{env}; default: %(default)s)",
        **kw,
    )


def _csms_options(p: argparse.ArgumentParser) -> None:
    _add(p, "--host", "HOST", "localhost", "address to listen on")
    _add(p, "--ws-port", "WS_PORT", 9000, "OCPP websocket port", type=int)
    _add(p, "--api-port", "API_PORT", 8000, "REST API port", type=int)
    _add(
        p,
        "--db",
        "DB",
        "v4e.db",
        "SQLite database path, or postgresql://user@host/dbname to share the state with "
        "other processes and machines (see docs/scaling.md)",
    )
    _add(
        p,
        "--heartbeat-interval",
        "HEARTBEAT_INTERVAL",
        30,
        "heartbeat interval sent to chargers at boot (s)",
        type=int,
    )
    _add(
        p,
        "--allow",
        "ALLOWED_IDS",
        "",
        "comma-separated charge point ids allowed to connect (empty: any)",
    )
    _add(
        p,
        "--unknown-tags",
        "UNKNOWN_TAGS",
        "accept",
        "answer for id tags not in the list",
        choices=["accept", "reject"],
    )
    _add(
        p,
        "--call-timeout",
        "CALL_TIMEOUT",
        30.0,
        "seconds to wait for a charger's answer",
        type=float,
    )
    _add(
        p,
        "--lenient",
        "LENIENT",
        "",
        "comma-separated actions whose payload quirks are "
        "repaired instead of refused ('*' for all)",
    )
    _add(
        p,
        "--api-auth",
        "API_AUTH",
        "auto",
        "API token: auto (required when binding beyond loopback), on, off",
        choices=["auto", "on", "off"],
    )
    _add(
        p,
        "--api-token",
        "API_TOKEN",
        None,
        "the API bearer token (generated when needed and not given)",
    )
    _add(
        p,
        "--allowed-hosts",
        "ALLOWED_HOSTS",
        "",
        "comma-separated extra Host names the REST API answers to (besides localhost, "
        "127.0.0.1, [::1] and --host)",
    )
    _add(p, "--tls-cert", "TLS_CERT", None, "certificate (PEM) for wss:// (Security Profile 2)")
    _add(p, "--tls-key", "TLS_KEY", None, "private key (PEM) of --tls-cert")
    _add(
        p,
        "--log-max-rows",
        "LOG_MAX_ROWS",
        1_000_000,
        "message-log retention: keep the newest this many OCPP messages (0: no limit)",
        type=int,
    )
    _add(
        p,
        "--log-max-days",
        "LOG_MAX_DAYS",
        30.0,
        "message-log retention: delete OCPP messages older than this (0: no limit)",
        type=float,
    )
    _add(
        p,
        "--call-rate",
        "CALL_RATE",
        100.0,
        "inbound calls per second handled per charger after a burst (0: no limit)",
        type=float,
    )
    _add(
        p,
        "--call-burst",
        "CALL_BURST",
        500,
        "inbound calls per charger handled back to back before --call-rate applies",
        type=int,
    )
    _add(
        p,
        "--require-password",
        "REQUIRE_PASSWORD",
        "false",
        "every charger must present its HTTP Basic password (true/false)",
    )
    _add(
        p,
        "--transport",
        "TRANSPORT",
        "wsproto",
        "websocket server transport: wsproto (lean, the default) or trio-websocket",
    )


def _cluster_options(p: argparse.ArgumentParser) -> None:
    _add(
        p,
        "--workers",
        "WORKERS",
        1,
        "worker processes sharing the ports (more than 1 needs a postgresql:// --db)",
        type=int,
    )
    _add(p, "--node-id", "NODE_ID", None, "this node's name in a PostgreSQL cluster")
    _add(
        p,
        "--node-lease",
        "NODE_LEASE",
        15.0,
        "seconds a PostgreSQL cluster node's chargers stay present without it (s)",
        type=float,
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker


def _sim_options(p: argparse.ArgumentParser, *, standalone: bool) -> None:
    if standalone:
        _add(p, "--url", "CSMS_URL", "ws://localhost:9000", "central system URL")
    _add(p, "--id", "CP_ID", "EVSE001", "charge point id (the first, with --count)")
    _add(p, "--count", "SIM_COUNT", 1, "number of chargers", type=int)
    _add(p, "--connectors", "CONNECTORS", 1, "connectors per charger", type=int)
    _add(p, "--power-kw", "POWER_KW", 22.0, "maximum power per connector (kW)", type=float)
    _add(
        p,
        "--heartbeat",
        "SIM_HEARTBEAT",
        None,
        "heartbeat interval until the CSMS sets one (s)",
        type=int,
    )
    _add(
        p,
        "--state-dir",
        "SIM_STATE_DIR",
        None,
        "keep each charger's state (like a real charger's flash) in this directory; after "
        "a restart, interrupted sessions are stopped with reason PowerLoss",
    )
    _add(p, "--auto-charge", "AUTO_CHARGE", None, "plug in and charge with this id tag on start")
    _add(p, "--password", "CP_PASSWORD", None, "HTTP Basic password (Security Profile 1/2)")
    _add(p, "--ca-cert", "CA_CERT", None, "CA certificate (PEM) to trust for wss://")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "hypercorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def _csms_config(args: argparse.Namespace) -> Any:
    from apps.csms.backend import BackendConfig
    from libv4e import CsmsConfig
    from libv4e.csms import ClusterConfig
    from libv4e.transport import FlowControl

    fds: list[int | None] = [None, None]
    if getattr(args, "reuse_port", False):  # one of several workers on the same ports
        from apps.csms.backend import bind_host
        from apps.csms.workers import reuse_port_socket

        host = bind_host(args.host)
        args.sockets = [reuse_port_socket(host, p) for p in (args.ws_port, args.api_port)]
        fds = [s.fileno() for s in args.sockets]
    node_id = getattr(args, "node_id", None)
    if node_id and getattr(args, "worker_index", None) is not None:
        node_id = f"{node_id}-{args.worker_index}"  # one node per worker
    allowed = frozenset(x for x in str(args.allow).split(",") if x) or None
    lenient = frozenset(x for x in str(args.lenient).split(",") if x)
    return BackendConfig(
        host=args.host,
        ws_port=args.ws_port,
        api_port=args.api_port,
        db_path=args.db,
        api_auth=args.api_auth,
        api_token=args.api_token,
        allowed_hosts=tuple(x.strip() for x in str(args.allowed_hosts).split(",") if x.strip()),
        ssl_context=_server_tls(args),
        cluster=ClusterConfig(node_id=node_id or None, lease=getattr(args, "node_lease", 15.0)),
        ws_fd=fds[0],
        api_fd=fds[1],
        csms=CsmsConfig(
            heartbeat_interval=args.heartbeat_interval,
            allowed_ids=allowed,
            unknown_tags=args.unknown_tags,
            call_timeout=args.call_timeout,
            lenient_actions=lenient,
            require_password=str(args.require_password).lower() in ("1", "true", "yes"),
            log_max_rows=args.log_max_rows or None,
            log_max_age=args.log_max_days * 86400 or None,
            flow=FlowControl(rate=args.call_rate or None, burst=args.call_burst),
            transport=args.transport,
        ),
    )


async def _until_signal(main: Callable[[trio.Nursery], Any]) -> None:
    """Run ``main(nursery)``; SIGTERM and Ctrl-C end it cleanly."""
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    print("\nshutting down…", file=sys.stderr)
                    nursery.cancel_scope.cancel()
                    return

        nursery.start_soon(watch)
        await main(nursery)


async def _start_backend(nursery: trio.Nursery, args: argparse.Namespace) -> Any:
    from apps.csms.backend import serve_backend

    config = _csms_config(args)
    backend = await nursery.start(
        lambda task_status: serve_backend(config, task_status=task_status)
    )
    print(f"OCPP 1.6-J: {backend.ws_url}/{{cp_id}}  (subprotocol ocpp1.6)")
    print(f"REST API:   {backend.api_url}   (try: curl {backend.api_url}/status)")
    return backend


def _check_db(args: argparse.Namespace) -> str | None:
    """One line saying what is wrong with --db / --workers, or None."""
    from libv4e.csms import is_postgres_url, store_for

    try:
        store_for(args.db)
    except ValueError as exc:
        return str(exc)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        return "--workers: must be at least 1"
    if workers > 1 and not is_postgres_url(args.db):
        return (
            "--workers: several workers share their state in PostgreSQL: use --db postgresql://..."
        )
    return None


def cmd_csms(args: argparse.Namespace) -> int:
    """Run the CSMS (OCPP websocket server) and the REST API."""
    problem = _check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.workers > 1:
        return _run_workers(args)

    async def main(nursery: trio.Nursery) -> None:
        if args.reuse_port:  # one of several workers: the supervisor printed the addresses
            from apps.csms.backend import serve_backend

            config = _csms_config(args)
            await nursery.start(lambda task_status: serve_backend(config, task_status=task_status))
        else:
            await _start_backend(nursery, args)

    return _run_server(args, main)


def _run_workers(args: argparse.Namespace) -> int:
    """``--workers N``: N worker processes listening on the same ports (SO_REUSEPORT)."""
    from apps.csms.backend import bind_host
    from apps.csms.workers import reuse_port_socket, run_workers

    host = bind_host(args.host)
    try:  # bound, not listening: reserves the ports (resolving 0) for the workers
        ws_sock = reuse_port_socket(host, args.ws_port, listen=False)
        api_sock = reuse_port_socket(host, args.api_port, listen=False)
    except OSError as exc:
        print(f"cannot bind {host}: {exc}", file=sys.stderr)
        return 1
    ws_port, api_port = ws_sock.getsockname()[1], api_sock.getsockname()[1]

    def command(index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "apps",
            *args.argv,
            *("--workers", "1", "--reuse-port", "--worker-index", str(index)),
            *("--ws-port", str(ws_port), "--api-port", str(api_port)),
        ]

    scheme = "wss" if args.tls_cert else "ws"
    shown = "localhost" if args.host in ("localhost", "127.0.0.1") else args.host
    print(f"OCPP 1.6-J: {scheme}://{shown}:{ws_port}/{{cp_id}}  ({args.workers} workers)")
    print(f"REST API:   http://{shown}:{api_port}   (try: curl http://{shown}:{api_port}/status)")

    async def main(nursery: trio.Nursery) -> None:
        await nursery.start(run_workers, command, args.workers)

    try:
        return _run_server(args, main)
    finally:
        ws_sock.close()
        api_sock.close()


def cmd_sim(args: argparse.Namespace) -> None:
    """Run simulated chargers against a central system."""
    from libv4e import serve_fleet

    async def main(nursery: trio.Nursery) -> None:
        await nursery.start(serve_fleet, _fleet_config(args, args.url))

    trio.run(_until_signal, main)


def cmd_up(args: argparse.Namespace) -> int:
    """Run everything in one process: CSMS, REST API and simulated EVSE001."""
    from libv4e import serve_fleet
    from libv4e.csms import is_postgres_url

    problem = _check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.state_dir is None:  # the simulated chargers remember sessions across restarts
        args.state_dir = "v4e.chargers" if is_postgres_url(args.db) else f"{args.db}.chargers"

    async def main(nursery: trio.Nursery) -> None:
        backend = await _start_backend(nursery, args)
        url = f"ws://127.0.0.1:{backend.ws_port}"
        await nursery.start(serve_fleet, _fleet_config(args, url))
        print(f"Dashboard:  {backend.api_url}/dashboard")
        print(f"Simulated:  {args.id}" + (f" (+{args.count - 1} more)" if args.count > 1 else ""))
        print("Ctrl-C to stop.")

    return _run_server(args, main)


def _run_server(args: argparse.Namespace, main: Callable[[trio.Nursery], Any]) -> int:
    """Run a server command; a startup failure (a port in use, a database that cannot be
    opened or written) is one line naming the problem and the option to change, not a
    traceback. Exit status 2 then."""
    try:
        trio.run(_until_signal, main)
    except (Exception, BaseExceptionGroup) as exc:
        message = startup_error(exc, args)
        if message is None:
            raise
        print(f"v4e: {message}", file=sys.stderr)
        return 2
    return 0


def startup_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line explanation of a known startup failure (None: not one we know)."""
    import errno

    from apps.csms.workers import WorkersFailed
    from libv4e import StoreError

    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, WorkersFailed):
            return str(leaf)
        if isinstance(leaf, StoreError):
            return f"{leaf} — check the database file or choose another with --db (V4E_DB)"
        if isinstance(leaf, OSError) and leaf.errno in (errno.EADDRINUSE, errno.EACCES):
            problem = "is already in use" if leaf.errno == errno.EADDRINUSE else "is not allowed"
            busy = [
                f"port {port} {problem} — choose another with {flag} "
                f"(V4E_{flag[2:].upper().replace('-', '_')})"
                for flag, port in (("--ws-port", args.ws_port), ("--api-port", args.api_port))
                if port and not _can_bind(args.host, port)
            ]
            if busy:
                return "cannot listen: " + "; ".join(busy)
        if isinstance(leaf, OSError) and leaf.filename is not None:
            return (
                f"{leaf.strerror}: {leaf.filename} — check --db (V4E_DB) and the "
                "permissions of its directory"
            )
        if isinstance(leaf, OSError) and leaf.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen: {leaf} — check --host (V4E_HOST)"
        if isinstance(leaf, ssl.SSLError | FileNotFoundError) and getattr(args, "tls_cert", None):
            return f"cannot load the TLS certificate: {leaf} — check --tls-cert / --tls-key"
    return None


def _can_bind(host: str, port: int) -> bool:
    import socket

    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError:
        return False
    return True


def _leaves(exc: BaseException) -> Any:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
        if exc.__cause__ is not None:
            yield from _leaves(exc.__cause__)


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    ca = getattr(args, "ca_cert", None)
    return ssl.create_default_context(cafile=ca) if ca else None


def cmd_set_password(args: argparse.Namespace) -> int:
    """Set a charger's HTTP Basic password in the database (stored hashed)."""
    from libv4e import CentralSystem
    from libv4e.csms import store_for

    password = args.password or os.environ.get("V4E_NEW_PASSWORD") or getpass.getpass("Password: ")

    problem = _check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2

    async def main() -> None:
        store = store_for(args.db)
        await store.open()
        try:
            await CentralSystem(store).set_password(args.cp_id, password)
        finally:
            await store.close()

    try:
        trio.run(main)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"password set for {args.cp_id} (a running CSMS picks it up at its next start; "
        "use PUT /chargers/{cp_id}/password to change it live)"
    )
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the agent tools over MCP (stdio); each tool calls the REST API."""
    try:
        import anyio

        from apps.csms.mcp import serve_mcp_stdio
    except ImportError:
        print("v4e mcp needs the MCP SDK: pip install -e '.[agents]'", file=sys.stderr)
        return 2
    if args.http is not None:
        from apps.csms.mcp import serve_mcp_http

        async def main(nursery: trio.Nursery) -> None:
            port = await nursery.start(
                functools.partial(
                    serve_mcp_http, args.url, args.host, args.http, token=args.api_token
                )
            )
            print(f"MCP (streamable HTTP): http://{args.host}:{port}/mcp", flush=True)

        trio.run(_until_signal, main)
        return 0
    logging.getLogger().setLevel(logging.WARNING)  # stdout is the protocol channel
    anyio.run(functools.partial(serve_mcp_stdio, args.url, token=args.api_token), backend="trio")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    """Print the agent tools: OpenAI strict function definitions (Chat Completions, or the
    flat shape of the Responses and Realtime APIs) or the MCP tool list."""
    from apps.csms.tools import mcp_tools, openai_tools

    if args.format == "openai":
        print(json.dumps(openai_tools(), indent=2))
    elif args.format == "openai-flat":
        print(json.dumps(openai_tools(flat=True), indent=2))
    else:
        print(json.dumps(mcp_tools(), indent=2))
    return 0


def _fleet_config(args: argparse.Namespace, url: str) -> Any:
    from libv4e import FleetConfig

    return FleetConfig.from_first_id(
        url=url,
        first_id=args.id,
        count=args.count,
        connectors=args.connectors,
        max_power_kw=args.power_kw,
        heartbeat_interval=args.heartbeat,
        auto_charge_tag=args.auto_charge,
        basic_auth_password=getattr(args, "password", None),
        state_dir=args.state_dir,
        ssl_context=_client_tls(args),
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``v4e`` argument parser."""
    parser = argparse.ArgumentParser(prog="v4e", description="Voice4EVs backend")
    _add(parser, "--log-level", "LOG_LEVEL", "INFO", "logging level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help=cmd_up.__doc__, description=cmd_up.__doc__)
    _csms_options(p)
    _sim_options(p, standalone=False)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("csms", help=cmd_csms.__doc__, description=cmd_csms.__doc__)
    _csms_options(p)
    _cluster_options(p)
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_csms)

    p = sub.add_parser("sim", help=cmd_sim.__doc__, description=cmd_sim.__doc__)
    _sim_options(p, standalone=True)
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser(
        "set-password", help=cmd_set_password.__doc__, description=cmd_set_password.__doc__
    )
    p.add_argument("cp_id")
    p.add_argument("--password", help="the password (default: env V4E_NEW_PASSWORD or ask)")
    _add(p, "--db", "DB", "v4e.db", "SQLite database path or postgresql:// URL")
    p.set_defaults(func=cmd_set_password)

    p = sub.add_parser("mcp", help=cmd_mcp.__doc__, description=cmd_mcp.__doc__)
    _add(p, "--url", "API_URL", "http://localhost:8000", "the backend's REST API")
    _add(p, "--api-token", "API_TOKEN", None, "bearer token for the API, if it needs one")
    p.add_argument(
        "--http",
        type=int,
        default=None,
        metavar="PORT",
        help="serve streamable HTTP on this port (0: any) instead of stdio",
    )
    p.add_argument("--host", default="127.0.0.1", help="address for --http")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("tools", help=cmd_tools.__doc__, description=cmd_tools.__doc__)
    p.add_argument("--format", choices=["openai", "openai-flat", "mcp"], default="openai")
    p.set_defaults(func=cmd_tools)

    from apps.demo.runner import add_demo_parser

    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``v4e`` console script."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.log_level)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
