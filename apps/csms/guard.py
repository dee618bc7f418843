"""The REST API's request guard: which Host names the server answers to, which Origin
may write, which bodies are accepted, and who may use the API at all (:class:`ApiAccess`,
the bearer token). :func:`add_guard` applies them in one ``before_request`` hook, before
routing.

Why: a web page in the operator's browser may send ``text/plain`` POSTs to the loopback
API without a CORS preflight, and a DNS-rebinding page talks to it under its own host
name. Refusing bodies that are not ``application/json`` forces a preflight (which we never
grant), refusing foreign ``Origin`` headers stops cross-origin writes, and checking
``Host`` stops rebinding.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
import os
import secrets
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quart import request
from quart_trio import QuartTrio

from libv4e.transport import is_loopback

from .errors import refusal

log = logging.getLogger("libv4e.api")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_names(bound_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names (lower case, no port, IPv6 without brackets) the API answers to:
    loopback names, the bound host, and ``extra`` (``--allowed-hosts``)."""
    names = set(LOOPBACK_NAMES)
    names.add(_bare(bound_host))
    names.update(_bare(h) for h in extra if h.strip())
    return frozenset(names)


def _bare(host: str) -> str:
    return host.strip().lower().strip("[]")


def split_host(value: str) -> str | None:
    """The host part of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``),
    lower case, without brackets; None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (end + 1 < len(value) and value[end + 1] != ":"):
            return None
        return value[1:end]
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(header: str | None, names: frozenset[str], *, any_ip: bool) -> bool:
    """Whether a request's ``Host`` header names this server. With ``any_ip`` (the server
    binds a wildcard address) any IP literal is accepted too: an IP literal cannot be
    rebound, only a DNS name can. A request without ``Host`` (HTTP/1.0) passes."""
    if header is None:
        return True
    name = split_host(header)
    if name is None:
        return False
    return name in names or (any_ip and _is_ip(name))


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """Whether a write with this ``Origin`` comes from our own pages: no ``Origin`` (curl,
    scripts), or one whose host and port are the request's ``Host``."""
    if origin is None:
        return True
    parsed = urllib.parse.urlsplit(origin.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or host_header is None:
        return False
    return parsed.netloc.lower() == host_header.strip().lower()


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<something>+json``, any parameters."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


@dataclasses.dataclass(frozen=True)
class ApiAccess:
    """Who may use the API, and under which names.

    With a ``token``, every write (POST, PUT, PATCH, DELETE) needs ``Authorization:
    Bearer <token>``; so does every read when ``protect_reads`` (always, when
    :meth:`for_binding` requires a token), else reads from loopback addresses pass.
    Without a token the API is open (the default on loopback, where the seed's curls must
    work as they are). ``hosts``
    are the ``Host`` names answered (see :func:`host_allowed`); ``any_ip`` accepts any IP
    literal too (the API binds a wildcard address)."""

    token: str | None = None
    protect_reads: bool = False
    hosts: frozenset[str] = LOOPBACK_NAMES
    any_ip: bool = False

    @classmethod
    def for_binding(
        cls,
        host: str,
        mode: str = "auto",
        token: str | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        token_file: str | None = None,
    ) -> ApiAccess:
        """The access policy for an API bound to ``host``.

        ``mode`` ``auto`` requires a token when ``host`` is not a loopback address or when
        ``allowed_hosts`` are given (a proxy on the same host makes remote callers look
        local: the loopback address proves nothing then) — one is generated if none is
        given, and written to ``token_file``, never to the log; ``on`` always requires one,
        for reads too; ``off`` never does (a loud warning is logged when that exposes the
        API beyond loopback). ``allowed_hosts`` are extra names the API answers to (its DNS
        names behind a proxy, say).
        """
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"api auth mode must be auto, on or off, not {mode!r}")
        allowed_hosts = tuple(allowed_hosts)
        proxied = any(h.strip() for h in allowed_hosts)
        beyond = not is_loopback(host) or proxied
        required = mode == "on" or (mode == "auto" and beyond)
        hosts = host_names(host, allowed_hosts)
        any_ip = host.strip("[]") in WILDCARDS
        if mode == "off" and not is_loopback(host):
            log.warning(
                "!!! The REST API on %s accepts commands from anyone who can reach it "
                "(API token switched off). Use this only on a private demo network. !!!",
                host,
            )
        if not required:
            return cls(None, False, hosts, any_ip)
        if not token:
            token = secrets.token_urlsafe(24)
            _announce_token(token, token_file)
        return cls(token, True, hosts, any_ip)  # a required token guards reads too

    def allows(self, method: str, remote: str | None, authorization: str | None) -> bool:
        """Whether a request may proceed."""
        if self.token is None:
            return True
        if (
            not self.protect_reads
            and method in ("GET", "HEAD", "OPTIONS")
            and remote is not None
            and is_loopback(remote)
        ):
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )


def _announce_token(token: str, token_file: str | None) -> None:
    """Tell the operator a generated token without writing it to the log."""
    if token_file is None:
        log.warning("generated an API token; set V4E_API_TOKEN to choose one you know")
        return
    path = Path(token_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    log.warning(
        "generated an API token; it is in %s (readable only by this user). "
        "Set V4E_API_TOKEN to choose one.",
        path,
    )


def add_guard(app: QuartTrio, access: ApiAccess) -> None:
    """Check every request of ``app`` against ``access`` and the rules above."""

    @app.before_request
    async def guard() -> Any:
        """The one gate of every request: Host, Origin, token, then body type."""
        headers = request.headers
        host = headers.get("host")
        if not host_allowed(host, access.hosts, any_ip=access.any_ip):
            log.warning("refused a request for host %r from %s", host, request.remote_addr)
            return refusal(400, "bad_host", "this server does not answer to that Host name")
        write = request.method in WRITE_METHODS
        if write and not origin_allowed(headers.get("origin"), host):
            log.warning(
                "refused a cross-origin %s %s (Origin %r) from %s",
                request.method,
                request.path,
                headers.get("origin"),
                request.remote_addr,
            )
            return refusal(403, "cross_origin", "cross-origin writes are refused")
        if not access.allows(request.method, request.remote_addr, headers.get("authorization")):
            response, status = refusal(
                401, "unauthorized", "this request needs Authorization: Bearer <API token>"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="v4e"'
            return response, status
        has_body = (request.content_length or 0) > 0 or "transfer-encoding" in headers
        if write and has_body and not is_json(headers.get("content-type")):
            return refusal(
                415,
                "unsupported_media_type",
                "request bodies must be Content-Type: application/json",
            )
        return None
