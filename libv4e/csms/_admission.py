"""Who may open a websocket: charger passwords (hashed, with a cache of the last good
one), failed-password throttling, the allowed ids and the duplicate-id policy."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import trio

from libv4e.csms._config import CsmsConfig
from libv4e.csms._passwords import (
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
)
from libv4e.csms._store import SecurityStore, StoreError
from libv4e.csms._throttle import FailureThrottle, ThrottlePolicy, address_of
from libv4e.transport._connection import OcppConnection
from libv4e.transport._websocket import ConnectionRequest, Refusal, valid_cp_id

log = logging.getLogger("libv4e.csms")


class Router(Protocol):
    """Reaches chargers connected to other processes sharing the store (see ``_cluster``)."""

    async def claim(self, cp_id: str) -> None: ...
    def released(self, cp_id: str) -> None: ...
    def holder(self, cp_id: str) -> str | None: ...
    def remote_ids(self) -> Iterable[str]: ...
    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any: ...
    async def probe(self, cp_id: str, timeout: float) -> bool: ...


class Passwords:
    """Charger HTTP Basic passwords (Security Profile 1/2), stored hashed.

    A verified password is remembered by a fingerprint, so a charger reconnecting with
    the same password skips the (slow, threaded) PBKDF2 check; failures are throttled
    per id and per address."""

    def __init__(
        self, store: SecurityStore, *, require: Callable[[], bool], throttle: ThrottlePolicy
    ) -> None:
        self.store = store
        self._require = require
        self.throttle = FailureThrottle(throttle)
        self._secrets: dict[str, str] = {}
        self._verified: dict[str, str] = {}  # cp_id -> sha256 of the last good password
        self._previous: dict[str, tuple[str, float]] = {}  # rotated: old hash, valid until

    async def load(self) -> None:
        """(Re)read the stored password hashes; forgets the verified cache."""
        self._secrets = await self.store.secrets()
        self._verified.clear()

    async def set(self, cp_id: str, password: str | None) -> None:
        """Set (or with None, remove) a charger's password; see CentralSystem.set_password."""
        problem = None if password is None else check_password_rules(password)
        if problem or not valid_cp_id(cp_id):
            raise ValueError(problem or f"invalid charge point id {cp_id!r}")
        stored = (
            None if password is None else await trio.to_thread.run_sync(hash_password, password)
        )
        await self.store.set_secret(cp_id, stored)
        if stored is None:
            self._secrets.pop(cp_id, None)
        else:
            self._secrets[cp_id] = stored
        self._verified.pop(cp_id, None)
        self._previous.pop(cp_id, None)

    async def rotate(self, cp_id: str, password: str, *, grace: float) -> None:
        """A new password (an AuthorizationKey the charger Accepted): the old one stays
        valid for ``grace`` seconds (trio's clock), the reconnect window, then only the
        new one is."""
        old = self._secrets.get(cp_id)
        await self.set(cp_id, password)
        if old is not None and grace > 0:
            self._previous[cp_id] = (old, trio.current_time() + grace)

    async def _previous_matches(self, cp_id: str, password: str) -> bool:
        previous = self._previous.get(cp_id)
        if previous is None:
            return False
        old, until = previous
        if trio.current_time() >= until:
            del self._previous[cp_id]
            return False
        return await trio.to_thread.run_sync(verify_password, password, old)

    @property
    def require(self) -> bool:
        """Whether every charger must present a password (``CsmsConfig.require_password``)."""
        return self._require()

    def has(self, cp_id: str) -> bool:
        """Whether ``cp_id`` must authenticate."""
        return cp_id in self._secrets

    async def check(self, request: ConnectionRequest) -> Refusal | None:
        """Refuse a request whose credentials are missing or wrong (401), or that comes
        while its id or address is throttled (429)."""
        stored = self._secrets.get(request.cp_id)
        if stored is None and not self.require:
            return None
        refusal = Refusal(
            401,
            "charger authentication failed",
            (("WWW-Authenticate", 'Basic realm="OCPP", charset="UTF-8"'),),
        )
        address = address_of(request.remote)
        wait = self.throttle.retry_after(request.cp_id, address, trio.current_time())
        if wait > 0:
            log.warning(
                "%s: too many failed passwords (id or %s); refused for %.0f s",
                request.cp_id,
                request.remote,
                wait,
            )
            return Refusal(
                429, "too many failed authentications", (("Retry-After", str(math.ceil(wait))),)
            )
        credentials = request.basic_auth()
        if credentials is None:  # (a client may first try without; not counted)
            log.warning("%s: no credentials from %s", request.cp_id, request.remote)
            return refusal
        if stored is None or credentials[0] != request.cp_id:
            log.warning("%s: wrong credentials from %s", request.cp_id, request.remote)
            self.throttle.failed(request.cp_id, address, trio.current_time())
            return refusal
        fingerprint = hashlib.sha256(f"{stored}:{credentials[1]}".encode()).hexdigest()
        if self._verified.get(request.cp_id) == fingerprint:
            return None
        if not await trio.to_thread.run_sync(verify_password, credentials[1], stored):
            if await self._previous_matches(request.cp_id, credentials[1]):
                log.info("%s: connected with its previous AuthorizationKey", request.cp_id)
                return None  # the reconnect window after a rotation (not cached)
            log.warning("%s: wrong password from %s", request.cp_id, request.remote)
            self.throttle.failed(request.cp_id, address, trio.current_time())
            return refusal
        if needs_rehash(stored):
            await self._rehash(request.cp_id, stored, credentials[1])
        else:
            self._verified[request.cp_id] = fingerprint
        return None

    async def _rehash(self, cp_id: str, stored: str, password: str) -> None:
        """Replace a hash made with older, weaker parameters by one made today (the
        password just verified against it). Skipped if the password changed meanwhile."""
        fresh = await trio.to_thread.run_sync(hash_password, password)
        if self._secrets.get(cp_id) != stored:
            return
        try:
            await self.store.set_secret(cp_id, fresh)
        except StoreError as exc:  # the old hash still works; try again next connect
            log.warning("%s: could not store the upgraded password hash: %s", cp_id, exc)
            return
        self._secrets[cp_id] = fresh
        self._verified[cp_id] = hashlib.sha256(f"{fresh}:{password}".encode()).hexdigest()
        log.info("%s: password hash upgraded to the current parameters", cp_id)


class Gate:
    """The admission of a websocket request: allowed ids (404), password (401/429) and
    a second connection for a connected id (409)."""

    def __init__(
        self,
        passwords: Passwords,
        *,
        config: Callable[[], CsmsConfig],
        connection: Callable[[str], OcppConnection | None],
        router: Callable[[], Router | None],
        load: Callable[[str], tuple[int, int]] = lambda address: (0, 0),
    ) -> None:
        self.passwords = passwords
        self._config = config
        self._connection = connection
        self._router = router
        self._load = load
        """address → (open connections, of which not booted) from it."""
        self._load_logged: dict[str, float] = {}
        self.profile: Callable[[str], int] = lambda cp_id: 1
        """The security profile the CSMS requires of a charger (set by the CSMS)."""

    async def admit(self, request: ConnectionRequest) -> Refusal | None:
        refusal = self.check_load(request)
        if refusal is not None:
            return refusal
        origin = request.headers.get("origin")
        if origin is not None and origin not in self._config().allowed_origins:
            return Refusal(403, "a browser origin may not connect as a charger")
        allowed = self._config().allowed_ids
        if allowed is not None and request.cp_id not in allowed:
            return Refusal(404, f"unknown charge point id {request.cp_id}")
        refusal = self.check_profile(request)
        if refusal is not None:
            return refusal
        if self.profile(request.cp_id) == 3:  # the certificate is its credential
            return await self.check_duplicate(request)
        refusal = await self.passwords.check(request)
        if refusal is not None:
            return refusal
        return await self.check_duplicate(request)

    def check_load(self, request: ConnectionRequest) -> Refusal | None:
        """Connections per remote address, and those of them not booted, are bounded."""
        config = self._config()
        address = address_of(request.remote)
        connections, unbooted = self._load(address)
        limit, junk = config.max_connections_per_address, config.max_unbooted_per_address
        if limit is not None and connections >= limit:
            self._log_load(address, f"{connections} connections (limit {limit})")
            return Refusal(503, "too many connections from this address")
        if junk is not None and unbooted >= junk:
            self._log_load(address, f"{unbooted} connections not booted (limit {junk})")
            return Refusal(503, "too many connections from this address have not booted")
        return None

    def _log_load(self, address: str, why: str) -> None:
        now = trio.current_time()
        if now >= self._load_logged.get(address, -math.inf):
            self._load_logged[address] = now + 60.0
            if len(self._load_logged) > 10_000:
                self._load_logged.clear()
            log.warning("refusing handshakes from %s: %s (logged once a minute)", address, why)

    def check_profile(self, request: ConnectionRequest) -> Refusal | None:
        """Security profiles (whitepaper §2): a connection below the charger's profile is
        refused (no downgrade); a client certificate (verified by TLS against the charger
        CA) must name the charger id in its subject CN, whatever the profile."""
        profile = self.profile(request.cp_id)
        cn = request.certificate_cn
        if request.client_certificate is not None and cn != request.cp_id:
            log.warning(
                "%s: refused a client certificate for %r from %s",
                request.cp_id,
                (cn or "")[:64],
                request.remote,
            )
            return Refusal(403, "the client certificate is not for this charge point id")
        if profile >= 2 and not request.tls:
            log.warning(
                "%s: security profile %d, refused a connection without TLS from %s",
                request.cp_id,
                profile,
                request.remote,
            )
            return Refusal(403, f"security profile {profile}: connect with TLS (wss://)")
        if profile == 3 and request.client_certificate is None:
            log.warning(
                "%s: security profile 3, refused a connection without a client certificate from %s",
                request.cp_id,
                request.remote,
            )
            return Refusal(403, "security profile 3: a client certificate is required")
        return None

    async def check_duplicate(self, request: ConnectionRequest) -> Refusal | None:
        """A second connection for a connected id: with a password it proved who it is
        and replaces the first; without, the first stays if it is still alive."""
        old = self._connection(request.cp_id)
        if (
            self.passwords.require
            or self.passwords.has(request.cp_id)
            or request.certificate_cn == request.cp_id  # proved by its certificate
        ):
            return None
        router = self._router()
        timeout = self._config().duplicate_probe_timeout
        if old is not None:
            alive = await old.ping(timeout)
        elif router is not None:  # connected to another node of the cluster?
            alive = await router.probe(request.cp_id, timeout)
        else:
            return None
        if alive:
            log.warning(
                "%s: refused a second connection from %s (the first is alive)",
                request.cp_id,
                request.remote,
            )
            return Refusal(409, f"charge point {request.cp_id} is already connected")
        return None
