"""The REST API: Quart-Trio over a :class:`CentralSystem`; JSON in, JSON out.

``create_app(csms)`` builds the app; serve it with Hypercorn on Trio in the same nursery as
the OCPP server (see :func:`serve_api`). Request bodies are validated by quart-schema with
pydantic models (`_api_models`), which also feed the OpenAPI document at
``/openapi.json``. Every error is a JSON object ``{"error": code, "message": text, ...}``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from pydantic import BaseModel, ValidationError
from quart import Response, jsonify, request
from quart_schema import QuartSchema, RequestSchemaValidationError, hide
from quart_schema.conversion import model_load
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from apps.csms.asgi_body import whole_body
from apps.csms.dashboard import add_dashboard_routes
from apps.csms.demo_api import add_scenario_routes
from apps.csms.models import (
    COMMANDS,
    AuthorizationEntry,
    Command,
    IdTagBody,
    PasswordBody,
    ReserveNowBody,
    SendLocalListBody,
    TicketBody,
)
from apps.csms.openapi import TrueOpenAPIProvider
from libv4e import (
    CallTimeoutError,
    ChargerNotConnectedError,
    ConnectionLostError,
    Libv4eError,
    LocalProtocolError,
    OcppError,
    RemoteCallError,
    StoreDataError,
    StoreError,
)
from libv4e.csms import (
    CentralSystem,
    ChargePointState,
    IdTag,
    InvalidTransition,
    ProfileStatus,
    ReservationConflictError,
    ReservationStatus,
    Ticket,
)
from libv4e.protocol import to_json_payload
from libv4e.scenarios import ScenarioError, ScenarioManager
from libv4e.transport import (
    LOOPBACK_NAMES,
    WILDCARDS,
    WRITE_METHODS,
    host_allowed,
    host_names,
    is_json,
    is_loopback,
    origin_allowed,
)

log = logging.getLogger("libv4e.api")

API_NAME = "Voice4EVs CSMS API"
MAX_BODY_BYTES = 256 * 1024
MAX_ID = 2**63 - 1
"""Ids beyond a 64-bit integer cannot exist (and SQLite cannot look them up)."""
BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive (then 408)."""


@dataclasses.dataclass(frozen=True)
class ApiAccess:
    """Who may use the API, and under which names.

    With a ``token``, every write (POST, PUT, PATCH, DELETE) needs ``Authorization:
    Bearer <token>``; so does every read when ``protect_reads`` (the API binds beyond
    loopback), else reads from loopback addresses pass. Without a token the API is open
    (the default on loopback, where the seed's curls must work as they are). ``hosts``
    are the ``Host`` names answered (see :mod:`._api_guard`); ``any_ip`` accepts any IP
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

        ``mode`` ``auto`` requires a token when ``host`` is not a loopback address (one is
        generated if none is given, and written to ``token_file`` — never to the log),
        ``on`` always requires one, ``off`` never does (a loud warning is logged when that
        exposes the API beyond loopback). ``allowed_hosts`` are extra names the API
        answers to (its DNS names behind a proxy, say).
        """
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"api auth mode must be auto, on or off, not {mode!r}")
        beyond = not is_loopback(host)
        required = mode == "on" or (mode == "auto" and beyond)
        hosts = host_names(host, allowed_hosts)
        any_ip = host.strip("[]") in WILDCARDS
        if mode == "off" and beyond:
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
        return cls(token, beyond, hosts, any_ip)

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


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra


SCENARIO_STATUS = {
    "unknown_scenario": 404,
    "charger_not_connected": 409,
    "scenario_active": 409,
    "fault_refused": 502,
    "charger_timeout": 504,
}


def translate_error(exc: Libv4eError, cp_id: str | None = None) -> ApiError:
    """The one translation of libv4e's errors (``libv4e._errors``) to HTTP answers.

    ``cp_id``: the charger the request was about, named in the answer."""
    where = {} if cp_id is None else {"cp_id": cp_id}
    who = cp_id or "the charger"
    if isinstance(exc, ChargerNotConnectedError):
        error = "charger_not_connected" if exc.known else "unknown_charger"
        return ApiError(404, error, str(exc), cp_id=exc.cp_id)
    if isinstance(exc, CallTimeoutError):
        message = f"{who} did not answer {exc.action} within {exc.timeout:g} s"
        return ApiError(504, "charger_timeout", message, **where)
    if isinstance(exc, RemoteCallError):
        message = f"{who} answered {exc.action} with CallError {exc.code}: {exc.description}"
        return ApiError(
            502,
            "charger_error",
            message,
            **where,
            ocpp_error_code=str(exc.code),
            ocpp_error_details=exc.details,
        )
    if isinstance(exc, ConnectionLostError):
        return ApiError(502, "charger_disconnected", str(exc), **where)
    if isinstance(exc, LocalProtocolError | InvalidTransition):
        return ApiError(422, "invalid_command", str(exc), **where)
    if isinstance(exc, ReservationConflictError):
        return ApiError(409, "reservation_conflict", str(exc), **where)
    if isinstance(exc, ScenarioError):
        return ApiError(SCENARIO_STATUS[exc.reason], exc.reason, str(exc), **where)
    if isinstance(exc, StoreDataError):
        log.warning("%s", exc)
        return ApiError(422, "invalid_data", "this data cannot be stored")
    if isinstance(exc, StoreError):
        log.error("%s", exc)
        return ApiError(503, "storage_unavailable", str(exc))
    log.error("unmapped libv4e error: %r", exc)
    return ApiError(500, "internal_error", "unexpected server error")


def body(model: type[BaseModel]) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Validate the JSON body with ``model`` (quart-schema + pydantic); an absent body
    counts as ``{}``, so bodies whose fields are all optional may be left out."""

    def decorator(func: Callable[..., Awaitable[Any]]) -> Any:
        setattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model, DataSource.JSON))

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            raw = await request.get_data(cache=True, as_text=False)
            data: Any = {}
            if raw.strip():
                try:
                    data = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                    raise ApiError(
                        400, "bad_request", "the request body is not valid JSON"
                    ) from None
            parsed = model_load(data, model, RequestSchemaValidationError)
            return await func(*args, data=parsed, **kwargs)

        return wrapper

    return decorator


def _validation_details(exc: RequestSchemaValidationError) -> list[dict[str, Any]]:
    inner = exc.validation_error
    if isinstance(inner, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in inner.errors()
        ]
    return [{"field": "(body)", "message": str(inner)}]


def create_app(
    csms: CentralSystem,
    *,
    scenarios: ScenarioManager | None = None,
    access: ApiAccess | None = None,
    extra: Callable[[QuartTrio], None] | None = None,
) -> QuartTrio:
    """The REST API of ``csms`` as a Quart-Trio app, with the demo and diagnosis routes of
    ``scenarios`` (the five default scenarios if None). ``extra`` may add routes."""
    scenarios = scenarios or ScenarioManager(csms)
    app = QuartTrio(__name__, static_folder=None)  # assets: the dashboard's own route
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    QuartSchema(
        app,
        info={"title": API_NAME, "version": "0.1.0"},
        openapi_provider_class=TrueOpenAPIProvider,
    )
    now = csms.clock
    access = access or ApiAccess()

    @app.before_request
    async def guard() -> Any:
        """The one gate of every request: Host, Origin, token, then body type."""
        headers = request.headers
        host = headers.get("host")
        if not host_allowed(host, access.hosts, any_ip=access.any_ip):
            log.warning("refused a request for host %r from %s", host, request.remote_addr)
            return _refusal(400, "bad_host", "this server does not answer to that Host name")
        write = request.method in WRITE_METHODS
        if write and not origin_allowed(headers.get("origin"), host):
            log.warning(
                "refused a cross-origin %s %s (Origin %r) from %s",
                request.method,
                request.path,
                headers.get("origin"),
                request.remote_addr,
            )
            return _refusal(403, "cross_origin", "cross-origin writes are refused")
        if not access.allows(request.method, request.remote_addr, headers.get("authorization")):
            response, status = _refusal(
                401, "unauthorized", "this request needs Authorization: Bearer <API token>"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="v4e"'
            return response, status
        has_body = (request.content_length or 0) > 0 or "transfer-encoding" in headers
        if write and has_body and not is_json(headers.get("content-type")):
            return _refusal(
                415,
                "unsupported_media_type",
                "request bodies must be Content-Type: application/json",
            )
        return None

    # -- errors ----------------------------------------------------------------------------

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify({"error": exc.error, "message": exc.message, **exc.extra}), exc.status

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_body(exc: RequestSchemaValidationError) -> tuple[Response, int]:
        details = _validation_details(exc)
        fields = ", ".join(d["field"] for d in details)
        return jsonify(
            {"error": "invalid_body", "message": f"invalid field(s): {fields}", "details": details}
        ), 422

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        names = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
            415: "unsupported_media_type",
        }
        message = exc.description or exc.name
        if status == 400:
            message = "the request body is not valid JSON"
        response = jsonify({"error": names.get(status, "http_error"), "message": message})
        for name, value in exc.get_headers():
            if name.lower() == "allow":  # 405 says which methods are allowed
                response.headers["Allow"] = value
        if status == 413:  # the rest of the body is not read: do not reuse the connection
            response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(Libv4eError)
    async def library_error(exc: Libv4eError) -> tuple[Response, int]:
        return await api_error(translate_error(exc))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled API error")
        return jsonify({"error": "internal_error", "message": "unexpected server error"}), 500

    # -- helpers -----------------------------------------------------------------------------

    def describe(states: Iterable[ChargePointState]) -> list[dict[str, Any]]:
        """Charge points as JSON, each with its active transactions (one pass over them)."""
        at, active = now(), csms.active_transactions()
        described = []
        for state in states:
            data = state.as_dict(at, csms.registry.offline_tolerance)
            data["active_transactions"] = [t.as_dict() for t in active.get(state.cp_id, [])]
            described.append(data)
        return described

    def charger_or_404(cp_id: str) -> ChargePointState:
        state = csms.registry.get(cp_id)
        if state is None:
            raise ApiError(404, "unknown_charger", f"charge point {cp_id} is unknown")
        return state

    async def send(cp_id: str, payload: Any) -> dict[str, Any]:
        """Send a command and record what it changes (:meth:`CentralSystem.operate`); the
        records touched are added to the answer, and to the error if it fails."""
        state: dict[str, Any] = {}
        try:
            result = await relay(cp_id, csms.operate(cp_id, payload, state=state))
        except ApiError as exc:
            exc.extra.update(state)
            raise
        return {**result, **state}

    async def relay(cp_id: str, exchange: Awaitable[Any]) -> dict[str, Any]:
        """Await a call to a charger; its answer as JSON, or an ApiError for each failure."""
        try:
            result = await exchange
        except Libv4eError as exc:
            raise translate_error(exc, cp_id) from exc
        return to_json_payload(result)

    # -- overview and state ----------------------------------------------------------------

    @app.get("/")
    async def overview() -> Any:
        """API overview: name, version, connected chargers, commands and demo routes."""
        return {
            "name": API_NAME,
            "version": "0.1.0",
            "connected_charge_points": csms.all_connected_ids,
            "commands": [f"POST /commands/{name}/{{cp_id}}" for name in COMMANDS]
            + ["POST /commands/send_local_list/{cp_id}"],
            "routes": [
                "GET /status",
                "GET /chargers",
                "GET /chargers/{cp_id}",
                "DELETE /chargers/{cp_id}",
                "GET /chargers/{cp_id}/messages",
                "GET /chargers/{cp_id}/local_list",
                "GET /chargers/{cp_id}/charging_profiles",
                "GET /chargers/{cp_id}/firmware",
                "GET /reservations",
                "GET /reservations/{reservation_id}",
                "GET /chargers/{cp_id}/meter_history",
                "GET /transactions",
                "GET /transactions/unmatched_stops",
                "GET /transactions/{transaction_id}",
                "GET /id_tags",
                "POST /id_tags",
                "DELETE /id_tags/{id_tag}",
                "GET /tickets",
                "POST /tickets",
                "GET /openapi.json",
                "GET /docs",
                "GET /dashboard",
                "GET /events",
                "GET /metrics",
                "GET /chargers/{cp_id}/diagnosis",
                "PUT /chargers/{cp_id}/password",
                "DELETE /chargers/{cp_id}/password",
            ],
            "demo_routes": [
                "GET /demo/scenarios",
                "POST /demo/trigger/{scenario_name}",
                "POST /demo/clear",
            ],
        }

    @app.get("/status")
    async def status() -> Any:
        """Every known charge point's state, and how many are connected and online."""
        at = now()
        return {
            "total_connected": len(csms.all_connected_ids),
            "total_online": len(csms.registry.online_ids(at)),
            "total_known": len(csms.registry),
            "charge_points": {d["cp_id"]: d for d in describe(csms.registry)},
        }

    @app.get("/chargers")
    async def chargers() -> Any:
        """Every known charge point (a list)."""
        return {"chargers": describe(csms.registry)}

    @app.get("/chargers/<cp_id>")
    async def charger(cp_id: str) -> Any:
        """One charge point's state."""
        return describe([charger_or_404(cp_id)])[0]

    @app.delete("/chargers/<cp_id>")
    async def delete_charger(cp_id: str) -> Any:
        """Forget a charger that is not connected (its transactions, message log and
        password stay); 409 while it is connected."""
        try:
            await csms.delete_charger(cp_id)
        except KeyError:
            raise ApiError(404, "unknown_charger", f"charge point {cp_id} is unknown") from None
        except ValueError as exc:
            raise ApiError(409, "charger_connected", f"{exc}; disconnect it first") from None
        return {"cp_id": cp_id, "deleted": True}

    @app.get("/chargers/<cp_id>/messages")
    async def messages(cp_id: str) -> Any:
        """The OCPP message log of one charger, newest first (?limit=50&offset=0&action=)."""
        charger_or_404(cp_id)
        limit = _int_arg("limit", 50, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        await csms.flush_log()
        rows = await csms.store.messages(
            cp_id, limit=limit, offset=offset, action=request.args.get("action")
        )
        return {"cp_id": cp_id, "limit": limit, "offset": offset, "messages": rows}

    @app.get("/transactions")
    async def transactions() -> Any:
        """Transactions, newest first (?cp_id=EVSE001&active=true&limit=50&offset=0)."""
        active = request.args.get("active")
        if active not in (None, "true", "false"):
            raise ApiError(400, "bad_query", "active must be true or false")
        limit = _int_arg("limit", 50, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        txs = await csms.store.transactions(
            cp_id=request.args.get("cp_id"),
            active=None if active is None else active == "true",
            limit=limit,
            offset=offset,
        )
        live = csms.transactions  # in-memory state is the freshest (energy so far)
        return {
            "limit": limit,
            "offset": offset,
            "transactions": [(live.get(t.transaction_id) or t).as_dict() for t in txs],
        }

    @app.get("/transactions/unmatched_stops")
    async def unmatched_stops() -> Any:
        """StopTransactions that matched no transaction of their charger (unknown id, an id
        of another charger, or a conflicting second stop), newest first
        (?cp_id=EVSE001&limit=50&offset=0). They were answered as OCPP requires and
        changed no transaction; they are kept here as evidence."""
        limit = _int_arg("limit", 50, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        stops = await csms.unmatched_stops(request.args.get("cp_id"), limit=limit, offset=offset)
        return {"limit": limit, "offset": offset, "unmatched_stops": [s.as_dict() for s in stops]}

    @app.get("/transactions/<int:transaction_id>")
    async def transaction(transaction_id: int) -> Any:
        """One transaction with its meter values."""
        tx = None if transaction_id > MAX_ID else await csms.get_transaction(transaction_id)
        if tx is None:
            raise ApiError(404, "unknown_transaction", f"transaction {transaction_id} is unknown")
        return {**tx.as_dict(), "meter_values": await csms.store.meter_values(transaction_id)}

    # -- authorization list ----------------------------------------------------------------

    @app.get("/id_tags")
    async def id_tags() -> Any:
        """The CSMS's authorization list and its version."""
        return {
            "list_version": csms.auth.version,
            "unknown_tags": str(csms.auth.unknown),
            "id_tags": [t.as_dict() for t in csms.auth],
        }

    @app.post("/id_tags")
    @body(IdTagBody)
    async def add_id_tag(data: IdTagBody) -> Any:
        """Add or update an id tag (not pushed to chargers; see send_local_list)."""
        tag = _tag_from(data)
        version = await csms.upsert_tag(tag)
        return {"list_version": version, "id_tag": tag.as_dict()}, 201

    @app.delete("/id_tags/<id_tag>")
    async def delete_id_tag(id_tag: str) -> Any:
        """Remove an id tag from the CSMS's list."""
        try:
            version = await csms.remove_tag(id_tag)
        except KeyError:
            raise ApiError(404, "unknown_id_tag", f"id tag {id_tag} is not listed") from None
        return {"list_version": version, "removed": id_tag}

    # -- commands --------------------------------------------------------------------------

    @app.post("/commands/send_local_list/<cp_id>")
    @body(SendLocalListBody)
    async def send_local_list(cp_id: str, data: SendLocalListBody) -> Any:
        """OCPP SendLocalList: one card (upserted in the CSMS's list, pushed Differential),
        or a Full/Differential update with many entries, removals and an explicit version.
        The update and the charger's answer are recorded (GET /chargers/{cp_id}/local_list);
        a VersionMismatch answer comes with ``offer``, a Full update to send next."""
        if data.id_tag is None:
            return await _send_list_update(cp_id, data)
        tag = _tag_from(data)
        version = await csms.upsert_tag(tag)
        if not csms.reachable(cp_id):
            charger_or_404(cp_id)
            raise ApiError(
                404,
                "charger_not_connected",
                f"charge point {cp_id} is not connected; the tag was saved in the CSMS's list",
                cp_id=cp_id,
                list_version=version,
            )
        result = await relay(cp_id, csms.push_tags(cp_id, [tag]))
        return {
            "cp_id": cp_id,
            "action": "SendLocalList",
            "list_version": version,
            "id_tag": tag.as_dict(),
            **result,
        }

    async def _send_list_update(cp_id: str, data: SendLocalListBody) -> Any:
        assert data.update_type is not None
        entries = data.local_authorization_list
        upserts = None if entries is None else [_entry_tag(e) for e in entries if e.id_tag_info]
        removals = [e.id_tag for e in entries or [] if e.id_tag_info is None]

        async def exchange(update_type: str, ups: list[IdTag] | None, version: int | None) -> Any:
            result, charger, update = await csms.send_local_list(
                cp_id,
                update_type,
                ups,
                removals if update_type == "Differential" else (),
                list_version=version,
                update_csms_list=data.update_csms_list,
            )
            return {
                "status": str(result.status),
                "update": update.as_dict(),
                "local_list": charger.as_dict(entries=False),
            }

        answer = await relay(cp_id, exchange(data.update_type, upserts, data.list_version))
        answer = {
            "cp_id": cp_id,
            "action": "SendLocalList",
            "list_version": answer["update"]["list_version"],
            "update_type": data.update_type,
            **answer,
        }
        if answer["status"] == "VersionMismatch":
            offer = csms.full_update_offer(cp_id)
            answer["offer"] = offer
            if data.on_version_mismatch == "send_full":
                answer["full_update"] = await relay(
                    cp_id, exchange("Full", None, offer["list_version"])
                )
        return answer

    @app.get("/chargers/<cp_id>/local_list")
    async def local_list(cp_id: str) -> Any:
        """What the CSMS sent to this charger's local list: the version accepted, the list
        the charger is believed to hold (``complete`` once a Full update was accepted), the
        version it last reported (GetLocalListVersion) and the last updates with their
        answers; ``csms_list_version`` is the CSMS's own list version."""
        state = csms.local_lists.get(cp_id)
        if state is None:
            charger_or_404(cp_id)
            state = csms.local_lists.of(cp_id)
        return {**state.as_dict(), "csms_list_version": csms.auth.version}

    # -- reservations and charging profiles (records) -----------------------------------------

    @app.get("/reservations")
    async def reservations() -> Any:
        """Reservations, newest first (?cp_id=EVSE001&status=Reserved&limit=50&offset=0).
        Statuses: Pending, Reserved, Used, Cancelled, Expired, Faulted, Occupied, Rejected,
        Unavailable, Unanswered."""
        status = request.args.get("status")
        if status is not None and status not in ReservationStatus._value2member_map_:
            raise ApiError(
                400, "bad_query", f"status must be one of {', '.join(ReservationStatus)}"
            )
        limit = _int_arg("limit", 50, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        await csms.expire_reservations()
        found = await csms.store.reservations(
            cp_id=request.args.get("cp_id"), status=status, limit=limit, offset=offset
        )
        return {
            "limit": limit,
            "offset": offset,
            "reservations": [r.as_dict() for r in found],
        }

    @app.get("/reservations/<int:reservation_id>")
    async def reservation(reservation_id: int) -> Any:
        """One reservation and its history."""
        await csms.expire_reservations()
        record = csms.reservations.get(reservation_id)
        if record is None and reservation_id <= MAX_ID:  # a larger id was never issued
            record = await csms.store.reservation(reservation_id)
        if record is None:
            raise ApiError(404, "unknown_reservation", f"reservation {reservation_id} is unknown")
        return record.as_dict()

    @app.get("/chargers/<cp_id>/firmware")
    async def firmware(cp_id: str) -> Any:
        """Firmware and diagnostics of one charger: the last status it reported for each
        (FirmwareStatusNotification, DiagnosticsStatusNotification), and the last
        UpdateFirmware and GetDiagnostics sent with the progress reported since."""
        state = csms.firmware.get(cp_id)
        if state is None:
            charger_or_404(cp_id)
            state = csms.firmware.of(cp_id)
        return state.as_dict()

    @app.get("/chargers/<cp_id>/charging_profiles")
    async def charging_profiles(cp_id: str) -> Any:
        """The charging profiles the CSMS set on this charger: by default those it believes
        installed (``?status=`` Installed, Pending, Rejected, NotSupported, Unanswered,
        Cleared, Replaced, Ended, or ``all``), newest first, with what limits each
        connector now as the CSMS believes."""
        charger_or_404(cp_id)
        status = request.args.get("status", "Installed")
        allowed = {"all", *ProfileStatus}
        if status not in allowed:
            raise ApiError(400, "bad_query", f"status must be one of {', '.join(sorted(allowed))}")
        limit = _int_arg("limit", 100, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        await csms.sweep_charging_profiles()
        records = await csms.store.charging_profiles(
            cp_id=cp_id, status=None if status == "all" else status, limit=limit, offset=offset
        )
        state = csms.registry.get(cp_id)
        connectors = sorted(
            {0, *(r.connector_id for r in records), *(state.connectors if state else {})}
        )
        return {
            "cp_id": cp_id,
            "status": status,
            "charging_profiles": [r.as_dict() for r in records],
            "limits": [await csms.believed_schedule(cp_id, c) for c in connectors],
        }

    for name, model in COMMANDS.items():
        app.add_url_rule(
            f"/commands/{name}/<cp_id>",
            f"command_{name}",
            _command_view(name, model, send, csms.reservations.allocate_id),
            methods=["POST"],
        )

    @app.post("/commands/<name>/<cp_id>")
    @hide  # not an operation: the answer for names that are none (404, listing them)
    async def unknown_command(name: str, cp_id: str) -> Any:
        """Any other command name is unknown."""
        raise ApiError(
            404,
            "unknown_command",
            f"unknown command {name!r}",
            commands=[*COMMANDS, "send_local_list"],
        )

    # -- charger passwords (Security Profile 1/2) --------------------------------------------

    @app.put("/chargers/<cp_id>/password")
    @body(PasswordBody)
    async def set_password(cp_id: str, data: PasswordBody) -> Any:
        """Set a charger's HTTP Basic password (stored hashed; the charger's username is its
        id). Takes effect at its next connection."""
        try:
            await csms.set_password(cp_id, data.password)
        except ValueError as exc:
            raise ApiError(422, "invalid_body", str(exc)) from exc
        return {"cp_id": cp_id, "password_set": True}

    @app.delete("/chargers/<cp_id>/password")
    async def delete_password(cp_id: str) -> Any:
        """Remove a charger's password (it may then connect without one, unless passwords
        are required for all)."""
        if not csms.has_password(cp_id):
            raise ApiError(404, "no_password", f"{cp_id} has no password")
        await csms.set_password(cp_id, None)
        return {"cp_id": cp_id, "password_set": False}

    # -- tickets ---------------------------------------------------------------------------

    @app.get("/tickets")
    async def tickets() -> Any:
        """Support tickets, oldest first."""
        return {"tickets": [t.as_dict() for t in await csms.store.tickets()]}

    @app.post("/tickets")
    @body(TicketBody)
    async def add_ticket(data: TicketBody) -> Any:
        """File a support ticket."""
        ticket = await csms.store.add_ticket(
            Ticket(0, data.cp_id, data.summary, now(), scenario=data.scenario, details=data.details)
        )
        scenarios.escalated(ticket.cp_id, ticket.scenario)
        return ticket.as_dict(), 201

    add_scenario_routes(app, scenarios)
    app.extensions["v4e_metrics"] = add_dashboard_routes(app, csms, scenarios)
    if extra is not None:
        extra(app)
    return app


def _refusal(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": error, "message": message}), status


def _command_view(
    name: str,
    model: type[Command],
    send: Callable[[str, Any], Awaitable[dict[str, Any]]],
    allocate_reservation_id: Callable[[], int],
) -> Callable[..., Awaitable[Any]]:
    @body(model)
    async def view(cp_id: str, data: Command) -> Any:
        try:
            if isinstance(data, ReserveNowBody) and data.reservation_id is None:
                payload = data.to_ocpp(allocate_reservation_id())
            else:
                payload = data.to_ocpp()
        except OcppError as exc:
            raise ApiError(422, "invalid_body", f"{name}: {exc.description}") from exc
        result = await send(cp_id, payload)
        return {"cp_id": cp_id, "action": type(payload).__name__, **result}

    view.__doc__ = f"{model.__doc__} Answers with the charger's OCPP response."
    view.__name__ = f"command_{name}"
    wrapped: Callable[..., Awaitable[Any]] = view
    return wrapped


def _tag_from(data: IdTagBody | SendLocalListBody) -> IdTag:
    assert data.id_tag is not None
    return IdTag(
        data.id_tag, data.status or "Accepted", _aware(data.expiry_date), data.parent_id_tag
    )


def _entry_tag(entry: AuthorizationEntry) -> IdTag:
    info = entry.id_tag_info
    assert info is not None
    return IdTag(entry.id_tag, info.status, _aware(info.expiry_date), info.parent_id_tag)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_query", f"{name} must be between {low} and {high}")
    return value


async def serve_api(
    app: QuartTrio,
    host: str,
    port: int,
    *,
    fd: int | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with Hypercorn on Trio until cancelled (on the listening socket
    ``fd`` if given: several worker processes share one); reports the bound port."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if fd is not None:
        config.bind = [f"fd://{fd}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2
    config.keep_alive_timeout = 75
    async with trio.open_nursery() as nursery:
        served = whole_body(
            app,  # type: ignore[arg-type]
            max_bytes=MAX_BODY_BYTES,
            timeout=BODY_TIMEOUT,
        )
        bound: list[str] = await nursery.start(
            functools.partial(hypercorn_serve, served, config)  # type: ignore[arg-type]
        )
        task_status.started(int(bound[0].rsplit(":", 1)[1]))
