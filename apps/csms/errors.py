"""The REST API's errors: :class:`ApiError` (JSON with an HTTP status), the one translation
of libv4e's errors to HTTP (:func:`translate_error`), request-body validation
(:func:`body`), query integers (:func:`int_arg`) and the app's error handlers.

Every route module imports its helpers from here (never from :mod:`libv4e_apps.csms.api`), so the
route modules and the app that assembles them form no cycle."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from quart import Response, jsonify, request
from quart_schema import RequestSchemaValidationError
from quart_schema.conversion import model_load
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from libv4e import (
    CallTimeoutError,
    ChargerNotConnectedError,
    ConnectionLostError,
    Libv4eError,
    LocalProtocolError,
    RemoteCallError,
    StoreDataError,
    StoreError,
)
from libv4e.charger import DriverActionRefused
from libv4e.csms import (
    CertificateRequestRejected,
    ChargerConnectedError,
    InvalidTransition,
    MessageTooLarge,
    ReservationConflictError,
    SecurityPolicyError,
    UnknownChargerError,
    UnknownTagError,
    UnsupportedCommandError,
)
from libv4e.sandbox import InvalidInitialState
from libv4e.scenarios import ScenarioError

log = logging.getLogger("libv4e.api")


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
    if isinstance(exc, UnknownChargerError):
        return ApiError(404, "unknown_charger", str(exc), cp_id=exc.cp_id)
    if isinstance(exc, ChargerConnectedError):
        return ApiError(409, "charger_connected", f"{exc}; disconnect it first", cp_id=exc.cp_id)
    if isinstance(exc, UnknownTagError):
        return ApiError(404, "unknown_id_tag", str(exc), id_tag=exc.id_tag)
    if isinstance(exc, UnsupportedCommandError):
        return ApiError(409, "unsupported_for_version", str(exc), **where, ocpp_version=exc.version)
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
    if isinstance(exc, SecurityPolicyError | CertificateRequestRejected):
        return ApiError(422, "security_policy", str(exc), **where)
    if isinstance(exc, MessageTooLarge):
        return ApiError(413, "message_too_large", str(exc), **where, hint=exc.hint)
    if isinstance(exc, InvalidInitialState):
        return ApiError(422, "invalid_initial_state", str(exc), field=exc.field)
    if isinstance(exc, DriverActionRefused):
        return ApiError(409, "driver_action_refused", str(exc), **where, reason=exc.reason)
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


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` (``default`` if absent); 400 unless it is an
    integer between ``low`` and ``high``."""
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


def refusal(status: int, error: str, message: str) -> tuple[Response, int]:
    """A JSON error answer outside the error handlers (the request guard's)."""
    return jsonify({"error": error, "message": message}), status


def _validation_details(exc: RequestSchemaValidationError) -> list[dict[str, Any]]:
    inner = exc.validation_error
    if isinstance(inner, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in inner.errors()
        ]
    return [{"field": "(body)", "message": str(inner)}]


def add_error_handlers(app: QuartTrio) -> None:
    """Answer every error of ``app`` as JSON: ApiError, invalid bodies, HTTP errors,
    libv4e's errors (through :func:`translate_error`) and anything unexpected (500)."""

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
        if status == 413:  # unless the body was drained (asgi_body.whole_body): close
            response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(Libv4eError)
    async def library_error(exc: Libv4eError) -> tuple[Response, int]:
        return await api_error(translate_error(exc))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled API error")
        return jsonify({"error": "internal_error", "message": "unexpected server error"}), 500
