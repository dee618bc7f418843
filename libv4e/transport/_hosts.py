"""The REST API's request guard, as plain functions: which Host names the server answers
to, which Origin may write, which bodies are accepted. ``_api`` applies them in one
``before_request`` hook, before routing and authentication.

Why: a web page in the operator's browser may send ``text/plain`` POSTs to the loopback
API without a CORS preflight, and a DNS-rebinding page talks to it under its own host
name. Refusing bodies that are not ``application/json`` forces a preflight (which we never
grant), refusing foreign ``Origin`` headers stops cross-origin writes, and checking
``Host`` stops rebinding.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
