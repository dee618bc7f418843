"""The CSMS's subcommands: ``v4e csms`` (the OCPP server and the REST API, one process
or ``--workers N``), ``v4e set-password``, ``v4e mcp`` and ``v4e tools`` (the agent
tools). :func:`add_parser` and :func:`add_tool_parsers` add them to the ``v4e`` parser
(:mod:`libv4e_apps.cli`); :func:`csms_options` and :func:`start_backend` serve ``v4e up`` too."""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import os
import ssl
import sys
from typing import Any

import trio

from ..runtime import StartupProblem, add, check_db, run_server, until_signal


def add_parser(sub: Any) -> None:
    """Add ``csms`` to the ``v4e`` parser."""
    p = sub.add_parser("csms", help=cmd_csms.__doc__, description=cmd_csms.__doc__)
    csms_options(p)
    cluster_options(p)
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_csms)


def add_tool_parsers(sub: Any) -> None:
    """Add ``set-password``, ``mcp`` and ``tools`` to the ``v4e`` parser."""
    p = sub.add_parser(
        "set-password", help=cmd_set_password.__doc__, description=cmd_set_password.__doc__
    )
    p.add_argument("cp_id")
    p.add_argument("--password", help="the password (default: env V4E_NEW_PASSWORD or ask)")
    add(p, "--db", "DB", "v4e.db", "SQLite database path or postgresql:// URL")
    p.set_defaults(func=cmd_set_password)

    p = sub.add_parser("mcp", help=cmd_mcp.__doc__, description=cmd_mcp.__doc__)
    add(p, "--url", "API_URL", "http://localhost:8000", "the backend's REST API")
    add(p, "--api-token", "API_TOKEN", None, "bearer token for the API, if it needs one")
    p.add_argument(
        "--http",
        type=int,
        default=None,
        metavar="PORT",
        help="serve streamable HTTP on this port (0: any) instead of stdio",
    )
    p.add_argument("--host", default="127.0.0.1", help="address for --http")
    add(
        p,
        "--mcp-token",
        "MCP_TOKEN",
        None,
        "bearer token MCP-over-HTTP clients must send (required beyond loopback or with "
        "--allowed-hosts: the endpoint holds the API token)",
    )
    add(
        p,
        "--allowed-hosts",
        "ALLOWED_HOSTS",
        "",
        "extra Host names the MCP HTTP endpoint answers to (comma-separated)",
    )
    _profile_option(p)
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("tools", help=cmd_tools.__doc__, description=cmd_tools.__doc__)
    p.add_argument(
        "--format", choices=["openai", "openai-flat", "realtime", "mcp"], default="openai"
    )
    _profile_option(p)
    p.set_defaults(func=cmd_tools)


def _profile_option(p: argparse.ArgumentParser) -> None:
    add(
        p,
        "--profile",
        "TOOL_PROFILE",
        "full",
        "which tools to offer: full (every tool) or a smaller profile, e.g. driver-support; "
        "driver: a driver simulator's own actions on a sandbox charger (plug in, unplug, "
        "card, stop, screen, car app)",
    )


def _check_profile(profile: str) -> str | None:
    """A one-line error for an unknown tool profile, else None."""
    from .tools import DRIVER_PROFILE, PROFILES

    if profile in PROFILES or profile == DRIVER_PROFILE:
        return None
    return (
        f"unknown tool profile {profile!r}; choose one of: {', '.join(PROFILES)} "
        f"(or {DRIVER_PROFILE} for a driver simulator)"
    )


def csms_options(p: argparse.ArgumentParser) -> None:
    add(p, "--host", "HOST", "localhost", "address to listen on")
    add(p, "--ws-port", "WS_PORT", 9000, "OCPP websocket port", type=int)
    add(p, "--api-port", "API_PORT", 8000, "REST API port", type=int)
    add(
        p,
        "--db",
        "DB",
        "v4e.db",
        "SQLite database path, or postgresql://user@host/dbname to share the state with "
        "other processes and machines (see docs/scaling.md)",
    )
    add(
        p,
        "--heartbeat-interval",
        "HEARTBEAT_INTERVAL",
        30,
        "heartbeat interval sent to chargers at boot (s)",
        type=int,
    )
    add(
        p,
        "--allow",
        "ALLOWED_IDS",
        "",
        "comma-separated charge point ids allowed to connect (empty: any)",
    )
    add(
        p,
        "--unknown-tags",
        "UNKNOWN_TAGS",
        "accept",
        "answer for id tags not in the list",
        choices=["accept", "reject"],
    )
    add(
        p,
        "--call-timeout",
        "CALL_TIMEOUT",
        30.0,
        "seconds to wait for a charger's answer",
        type=float,
    )
    add(
        p,
        "--lenient",
        "LENIENT",
        "",
        "comma-separated actions whose payload quirks are "
        "repaired instead of refused ('*' for all)",
    )
    add(
        p,
        "--api-auth",
        "API_AUTH",
        "auto",
        "API token: auto (required when binding beyond loopback), on, off",
        choices=["auto", "on", "off"],
    )
    add(
        p,
        "--api-token",
        "API_TOKEN",
        None,
        "the API bearer token (generated when needed and not given)",
    )
    add(
        p,
        "--allowed-hosts",
        "ALLOWED_HOSTS",
        "",
        "comma-separated extra Host names the REST API answers to (besides localhost, "
        "127.0.0.1, [::1] and --host)",
    )
    add(p, "--tls-cert", "TLS_CERT", None, "certificate (PEM) for wss:// (Security Profile 2)")
    add(p, "--tls-key", "TLS_KEY", None, "private key (PEM) of --tls-cert")
    add(
        p,
        "--charger-ca-cert",
        "CHARGER_CA_CERT",
        None,
        "CA certificate (PEM) that signs charger certificates and that wss:// trusts for "
        "client certificates (Security Profile 3); default: a development CA created in "
        "the database's folder",
    )
    add(p, "--charger-ca-key", "CHARGER_CA_KEY", None, "private key (PEM) of --charger-ca-cert")
    add(
        p,
        "--charger-certificate-days",
        "CHARGER_CERTIFICATE_DAYS",
        365,
        "validity of the charger certificates the CA signs (SignCertificate)",
        type=int,
    )
    add(
        p,
        "--authorization-key-grace",
        "AUTHORIZATION_KEY_GRACE",
        300.0,
        "seconds a charger's previous password stays valid after an AuthorizationKey "
        "rotation it accepted",
        type=float,
    )
    add(
        p,
        "--log-max-rows",
        "LOG_MAX_ROWS",
        1_000_000,
        "message-log retention: keep at most this many OCPP messages, trimming the chargers "
        "that logged most first (0: no limit)",
        type=int,
    )
    add(
        p,
        "--log-max-rows-per-charger",
        "LOG_MAX_ROWS_PER_CHARGER",
        20_000,
        "message-log retention: no charger keeps more than this many messages (0: no limit)",
        type=int,
    )
    add(
        p,
        "--log-max-days",
        "LOG_MAX_DAYS",
        30.0,
        "message-log retention: delete OCPP messages older than this (0: no limit)",
        type=float,
    )
    add(
        p,
        "--meter-max-per-transaction",
        "METER_MAX_PER_TRANSACTION",
        10_000,
        "meter-value retention: keep the newest this many MeterValues messages of a "
        "transaction (0: no limit)",
        type=int,
    )
    add(
        p,
        "--meter-max-untied",
        "METER_MAX_UNTIED",
        1_000,
        "meter-value retention: keep the newest this many MeterValues messages without a "
        "transaction per charger (0: no limit)",
        type=int,
    )
    add(
        p,
        "--meter-max-days",
        "METER_MAX_DAYS",
        365.0,
        "meter-value retention: delete meter values stored longer ago than this (0: no limit)",
        type=float,
    )
    add(
        p,
        "--call-rate",
        "CALL_RATE",
        100.0,
        "inbound calls per second handled per charger id after a burst, kept across "
        "reconnects (0: no limit)",
        type=float,
    )
    add(
        p,
        "--address-call-rate",
        "ADDRESS_CALL_RATE",
        2000.0,
        "inbound calls per second from one remote address, all its chargers together, "
        "after a burst of 10x (loopback exempt; 0: no limit)",
        type=float,
    )
    add(
        p,
        "--call-burst",
        "CALL_BURST",
        500,
        "inbound calls per charger handled back to back before --call-rate applies",
        type=int,
    )
    add(
        p,
        "--require-password",
        "REQUIRE_PASSWORD",
        "false",
        "every charger must present its HTTP Basic password (true/false)",
    )
    add(
        p,
        "--max-connectors",
        "MAX_CONNECTORS",
        64,
        "highest connectorId a charger may use; above it its calls are refused "
        "(PropertyConstraintViolation) and nothing is created (0: no limit)",
        type=int,
    )
    add(
        p,
        "--ws-allowed-origins",
        "WS_ALLOWED_ORIGINS",
        "",
        "comma-separated browser origins allowed to open a charger websocket (chargers send "
        "no Origin; empty: refuse every handshake that carries one)",
    )
    add(
        p,
        "--max-connections-per-address",
        "MAX_CONNECTIONS_PER_ADDRESS",
        10_000,
        "open charger connections from one remote address; beyond, handshakes get 503 "
        "(0: no limit)",
        type=int,
    )
    add(
        p,
        "--max-unbooted-per-address",
        "MAX_UNBOOTED_PER_ADDRESS",
        1024,
        "connections from one address without an accepted BootNotification yet; beyond, "
        "handshakes get 503 (0: no limit)",
        type=int,
    )
    add(
        p,
        "--boot-deadline",
        "BOOT_DEADLINE",
        300.0,
        "seconds a connection may stay open without an accepted BootNotification (0: none)",
        type=float,
    )
    add(
        p,
        "--http-idle-timeout",
        "HTTP_IDLE_TIMEOUT",
        20.0,
        "seconds a REST connection may go without a complete request: keep-alive idle, "
        "and a request head sent slowly (behind a load balancer: above its idle timeout)",
        type=float,
    )
    add(
        p,
        "--webhook",
        "WEBHOOK",
        "",
        "URLs (repeat the option, or comma-separated) that receive every semantic event as "
        "a signed POST (the HMAC secret from env V4E_WEBHOOK_SECRET, at least 16 "
        "characters); more over /webhooks",
        action=_JoinRepeated,
    )
    add(
        p,
        "--transport",
        "TRANSPORT",
        "wsproto",
        "websocket server transport: wsproto (lean, the default) or trio-websocket",
    )
    add(
        p,
        "--ocpp-versions",
        "OCPP_VERSIONS",
        "2.0.1,1.6",
        "OCPP versions served, in the order of preference (a charger offering several gets "
        "the first of these it offered): 2.0.1,1.6 (default), 1.6,2.0.1, or one of them",
    )


def ocpp_versions(text: str) -> tuple[str, ...]:
    """``"2.0.1,1.6"`` → ``("ocpp2.0.1", "ocpp1.6")``; SystemExit naming a bad one."""
    from libv4e.protocol import OcppVersion

    try:
        return tuple(
            OcppVersion.parse(x).subprotocol for x in str(text).split(",") if x.strip()
        ) or (OcppVersion.V201.subprotocol, OcppVersion.V16.subprotocol)
    except ValueError as exc:
        raise SystemExit(f"v4e csms: --ocpp-versions: {exc}") from None


def cluster_options(p: argparse.ArgumentParser) -> None:
    add(
        p,
        "--workers",
        "WORKERS",
        1,
        "worker processes sharing the ports (more than 1 needs a postgresql:// --db)",
        type=int,
    )
    add(p, "--node-id", "NODE_ID", None, "this node's name in a PostgreSQL cluster")
    add(
        p,
        "--node-lease",
        "NODE_LEASE",
        15.0,
        "seconds a PostgreSQL cluster node's chargers stay present without it (s)",
        type=float,
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker


def csms_config(args: argparse.Namespace) -> Any:
    from libv4e import CsmsConfig
    from libv4e.csms import ClusterConfig
    from libv4e.transport import FlowControl

    from .backend import BackendConfig

    fds: list[int | None] = [None, None]
    if getattr(args, "reuse_port", False):  # one of several workers on the same ports
        from .backend import bind_host
        from .workers import reuse_port_socket

        host = bind_host(args.host)
        args.sockets = [reuse_port_socket(host, p) for p in (args.ws_port, args.api_port)]
        fds = [s.fileno() for s in args.sockets]
    node_id = getattr(args, "node_id", None)
    if node_id and getattr(args, "worker_index", None) is not None:
        node_id = f"{node_id}-{args.worker_index}"  # one node per worker
    allowed = frozenset(x for x in str(args.allow).split(",") if x) or None
    lenient = frozenset(x for x in str(args.lenient).split(",") if x)
    ca = charger_ca(args)
    return BackendConfig(
        webhooks=webhooks(args),
        http_idle_timeout=args.http_idle_timeout,
        host=args.host,
        ws_port=args.ws_port,
        api_port=args.api_port,
        db_path=args.db,
        api_auth=args.api_auth,
        api_token=args.api_token,
        allowed_hosts=tuple(x.strip() for x in str(args.allowed_hosts).split(",") if x.strip()),
        ssl_context=server_tls(args, ca),
        charger_ca=ca,
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
            max_connectors=args.max_connectors or None,
            max_connections_per_address=args.max_connections_per_address or None,
            max_unbooted_per_address=args.max_unbooted_per_address or None,
            boot_deadline=args.boot_deadline or None,
            allowed_origins=frozenset(
                x.strip() for x in str(args.ws_allowed_origins).split(",") if x.strip()
            ),
            log_max_rows=args.log_max_rows or None,
            log_max_rows_per_charger=args.log_max_rows_per_charger or None,
            log_max_age=args.log_max_days * 86400 or None,
            meter_max_per_transaction=getattr(args, "meter_max_per_transaction", 0) or None,
            meter_max_untied=getattr(args, "meter_max_untied", 0) or None,
            meter_max_age=getattr(args, "meter_max_days", 0) * 86400 or None,
            flow=FlowControl(rate=args.call_rate or None, burst=args.call_burst),
            address_flow=(
                FlowControl(
                    rate=args.address_call_rate, burst=max(1, int(args.address_call_rate * 10))
                )
                if args.address_call_rate
                else None
            ),
            transport=args.transport,
            ocpp_versions=ocpp_versions(args.ocpp_versions),
            authorization_key_grace=args.authorization_key_grace,
            charger_certificate_days=args.charger_certificate_days,
        ),
    )


class _JoinRepeated(argparse.Action):
    """A repeatable option kept as one comma-separated string: the first use on the
    command line replaces the environment's default, later ones are appended."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        mark = f"_{self.dest}_given"
        before = getattr(namespace, self.dest, "") if getattr(namespace, mark, False) else ""
        setattr(namespace, self.dest, ",".join(x for x in (before, str(values)) if x))
        setattr(namespace, mark, True)


def webhooks(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The ``--webhook`` URLs with the secret of V4E_WEBHOOK_SECRET."""
    from .events import webhook_url_problem

    urls = [u.strip() for u in str(getattr(args, "webhook", "") or "").split(",") if u.strip()]
    if not urls:
        return ()
    secret = os.environ.get("V4E_WEBHOOK_SECRET", "")
    if len(secret) < 16:
        raise StartupProblem(
            "--webhook needs a signing secret: set V4E_WEBHOOK_SECRET (16 characters or more)"
        )
    for url in urls:
        problem = webhook_url_problem(url)
        if problem is not None:
            raise StartupProblem(f"--webhook {url!r} is {problem}")
    return tuple((url, secret) for url in urls)


async def start_backend(nursery: trio.Nursery, args: argparse.Namespace) -> Any:
    from .backend import serve_backend

    config = csms_config(args)
    backend = await nursery.start(
        lambda task_status: serve_backend(config, task_status=task_status)
    )
    print(f"OCPP 1.6-J: {backend.ws_url}/{{cp_id}}  (subprotocol ocpp1.6)")
    print(f"REST API:   {backend.api_url}   (try: curl {backend.api_url}/status)")
    return backend


def cmd_csms(args: argparse.Namespace) -> int:
    """Run the CSMS (OCPP websocket server) and the REST API."""
    problem = check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.workers > 1:
        return run_workers(args)

    async def main(nursery: trio.Nursery) -> None:
        if args.reuse_port:  # one of several workers: the supervisor printed the addresses
            from .backend import serve_backend

            config = csms_config(args)
            await nursery.start(lambda task_status: serve_backend(config, task_status=task_status))
        else:
            await start_backend(nursery, args)

    return run_server(args, main)


def run_workers(args: argparse.Namespace) -> int:
    """``--workers N``: N worker processes listening on the same ports (SO_REUSEPORT)."""
    from .backend import bind_host
    from .workers import reuse_port_socket, run_workers

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
            __name__.partition(".")[0],  # the apps' package: libv4e_apps when installed
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
        return run_server(args, main)
    finally:
        ws_sock.close()
        api_sock.close()


def server_tls(args: argparse.Namespace, ca: Any = None) -> ssl.SSLContext | None:
    """The wss:// context: the server certificate, and with a charger CA, client
    certificates requested (optional: profile 1/2 chargers have none) and verified."""
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=ca.certificate_pem)
    return context


def charger_ca(args: argparse.Namespace) -> Any:
    """The charger CA: the operator's (``--charger-ca-cert``/``--charger-ca-key``), or a
    development CA kept in the database's folder (created, and said so, when missing)."""
    from libv4e.csms import CertificateAuthority, is_postgres_url

    cert, key = getattr(args, "charger_ca_cert", None), getattr(args, "charger_ca_key", None)
    if cert or key:
        if not (cert and key):
            raise StartupProblem("give both --charger-ca-cert and --charger-ca-key (or neither)")
        try:
            return CertificateAuthority.from_files(cert, key)
        except (OSError, ValueError) as exc:
            raise StartupProblem(
                f"cannot load the charger CA: {exc} — check --charger-ca-cert/--charger-ca-key"
            ) from None
    db = str(getattr(args, "db", "v4e.db"))
    if db == ":memory:":
        return None
    folder = "." if is_postgres_url(db) else (os.path.dirname(os.path.abspath(db)) or ".")
    if not os.path.isdir(folder):
        return None  # the database cannot be created there either: its open says so, naming --db
    try:
        ca, created = CertificateAuthority.load_or_create(folder)
    except (OSError, ValueError) as exc:
        raise StartupProblem(
            f"cannot create the development charger CA in {folder}: {exc} — give "
            "--charger-ca-cert/--charger-ca-key"
        ) from None
    if created:
        print(
            f"Charger CA: created a development CA in {folder}/charger-ca.pem (for "
            "SignCertificate and Security Profile 3; give --charger-ca-cert/--charger-ca-key "
            "in production)"
        )
    return ca


def cmd_set_password(args: argparse.Namespace) -> int:
    """Set a charger's HTTP Basic password in the database (stored hashed)."""
    from libv4e import CentralSystem
    from libv4e.csms import store_for

    password = args.password or os.environ.get("V4E_NEW_PASSWORD") or getpass.getpass("Password: ")

    problem = check_db(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2

    async def main() -> None:
        store = store_for(args.db)
        await store.open()
        try:
            await CentralSystem(store).passwords.set(args.cp_id, password)
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
    problem = _check_profile(args.profile)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        import anyio

        from .mcp import serve_mcp_stdio
    except ImportError:
        print("v4e mcp needs the MCP SDK: pip install -e '.[agents]'", file=sys.stderr)
        return 2
    if args.http is not None:
        from libv4e.transport import is_loopback

        from .mcp import serve_mcp_http

        hosts = tuple(h.strip() for h in str(args.allowed_hosts).split(",") if h.strip())
        if args.mcp_token is None and (not is_loopback(args.host) or hosts):
            print(
                "v4e: MCP over HTTP on a non-loopback --host (or with --allowed-hosts) needs "
                "a client token: set --mcp-token (V4E_MCP_TOKEN)",
                file=sys.stderr,
            )
            return 2

        async def main(nursery: trio.Nursery) -> None:
            port = await nursery.start(
                functools.partial(
                    serve_mcp_http,
                    args.url,
                    args.host,
                    args.http,
                    token=args.api_token,
                    profile=args.profile,
                    mcp_token=args.mcp_token,
                    allowed_hosts=hosts,
                )
            )
            print(f"MCP (streamable HTTP): http://{args.host}:{port}/mcp", flush=True)

        trio.run(until_signal, main)
        return 0
    logging.getLogger().setLevel(logging.WARNING)  # stdout is the protocol channel
    anyio.run(
        functools.partial(serve_mcp_stdio, args.url, token=args.api_token, profile=args.profile),
        backend="trio",
    )
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    """Print the agent tools: OpenAI strict function definitions (Chat Completions, or the
    flat shape of the Responses API), the Realtime API's session tools, or the MCP tool
    list."""
    from .tools import mcp_tools, openai_tools, realtime_tools

    problem = _check_profile(args.profile)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.format == "openai":
        print(json.dumps(openai_tools(profile=args.profile), indent=2))
    elif args.format == "openai-flat":
        print(json.dumps(openai_tools(flat=True, profile=args.profile), indent=2))
    elif args.format == "realtime":
        print(json.dumps(realtime_tools(args.profile), indent=2))
    else:
        print(json.dumps(mcp_tools(args.profile), indent=2))
    return 0
