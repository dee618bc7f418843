"""The OpenAPI document, made true: quart-schema documents request bodies from the
pydantic models; this adds what every route can really answer (its success status and
the JSON errors of ``_api``), so schema-driven clients and fuzzers can rely on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart_schema.openapi import OpenAPIProvider

from .responses import route_doc

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
CP_ID_SCHEMA = {"type": "string", "pattern": r"^(?!\.+$)[A-Za-z0-9*\-_=:+|@.]{1,48}$"}
"""What the CSMS accepts as a charge point id (see ``_transport.valid_cp_id``)."""
CREATED = {
    ("post", "/id_tags"),
    ("post", "/tickets"),
    ("post", "/demo/trigger/{name}"),
    ("post", "/webhooks"),
}
ERRORS: dict[str, str] = {
    "400": "Bad request: malformed JSON, a bad query parameter or an unknown Host name",
    "401": "The API token is required (see docs/security.md)",
    "404": "Unknown route, charger, transaction, tag or scenario; or charger not connected",
    "405": "Method not allowed (the Allow header lists the allowed ones)",
}
WRITE_ERRORS: dict[str, str] = {
    "403": "Cross-origin write refused",
    "408": "The request body did not arrive in time",
    "409": "Conflict with the current state (e.g. a scenario already active, a connected charger)",
    "413": "Request body too large",
    "415": "Request bodies must be application/json",
    "422": "Invalid body (the fields are named)",
    "502": "The charger answered with a CallError or disconnected",
    "503": "The database is unavailable",
    "504": "The charger did not answer in time",
}


class TrueOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider, plus every status each route answers with."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or method not in (
                    "get",
                    "post",
                    "put",
                    "patch",
                    "delete",
                ):
                    continue
                _mark_required_body(operation, document)
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path" and parameter.get("name") == "cp_id":
                        parameter["schema"] = dict(CP_ID_SCHEMA)
                responses = operation.setdefault("responses", {})
                success = "201" if (method, path) in CREATED else "200"
                responses.setdefault(
                    success,
                    {
                        "description": "Success",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                )
                doc = route_doc(method, path)
                if doc is not None:
                    _document(operation, responses[success], doc, document)
                elif path == "/docs":
                    responses[success].pop("content", None)  # not JSON
                errors = dict(ERRORS)
                if method != "get":
                    errors.update(WRITE_ERRORS)
                else:
                    errors["503"] = WRITE_ERRORS["503"]
                for status, description in errors.items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": ERROR_SCHEMA}},
                        },
                    )
        return document


def _mark_required_body(operation: dict[str, Any], document: dict[str, Any]) -> None:
    """A body whose model has required fields is itself required (an absent body counts
    as ``{}``, which then lacks them)."""
    body = operation.get("requestBody")
    if not isinstance(body, dict):
        return
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = document.get("components", {}).get("schemas", {}).get(ref.split("/")[-1], {})
    if schema.get("required"):
        body["required"] = True


_REF = "#/components/schemas/{model}"


def _document(
    operation: dict[str, Any], success: dict[str, Any], doc: Any, document: dict[str, Any]
) -> None:
    """Add ``doc``'s query parameters and success answer (:mod:`libv4e_apps.csms.responses`)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if doc.query is not None:
        parameters = operation.setdefault("parameters", [])
        known = {(p.get("in"), p.get("name")) for p in parameters}
        query = doc.query.model_json_schema(ref_template=_REF)
        required = set(query.get("required", []))
        for name, prop in query.get("properties", {}).items():
            if ("query", name) in known:
                continue
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _not_null(prop),
            }
            if "description" in prop:
                parameter["description"] = prop["description"]
            parameters.append(parameter)
    if doc.response is None:
        success["content"] = {ct: {"schema": {"type": "string"}} for ct in doc.content_types}
        return
    schema = _component(doc.response, schemas)
    success["content"] = {ct: {"schema": schema} for ct in doc.content_types}


def _component(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON schema in ``components/schemas`` (with the models it uses); a $ref."""
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: ``X | None`` is X (absent means none), no title."""
    out = {k: v for k, v in schema.items() if k not in ("title", "description")}
    if out.get("default", 0) is None:
        del out["default"]
    branches = [b for b in out.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        out.update(branches[0])
    elif branches:
        out["anyOf"] = branches
    return out
