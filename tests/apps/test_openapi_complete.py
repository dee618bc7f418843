"""``/openapi.json`` documents every route: its query parameters (each one the route reads,
and none it does not) and its success answer's schema; real answers validate against it."""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import trio
from quart_schema.openapi import QUART_SCHEMA_HIDDEN_ATTRIBUTE

from libv4e.csms._central import CsmsConfig
from libv4e_apps.csms.backend import BackendConfig, serve_backend
from tests.support import api, charger_running, wait_for

_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_READS = re.compile(
    r'request\.args(?:\.get|\.getlist)?\(\s*"(\w+)"|request\.args\[\s*"(\w+)"\]'
    r'|(?:int_arg|parse_list)\(\s*"(\w+)"'
)
_MODEL_READS = re.compile(r"(\w+)\.model_validate\(\s*dict\(request\.args")


@contextlib.asynccontextmanager
async def backend_and_app(tmp_path) -> AsyncIterator[tuple[Any, Any]]:
    """A real backend, and its Quart app (to walk its URL map)."""
    apps: list[Any] = []
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=str(tmp_path / "v4e.db"),
        csms=CsmsConfig(),
    )
    async with trio.open_nursery() as nursery:
        backend = await nursery.start(
            lambda task_status: serve_backend(
                config, extra_routes=apps.append, task_status=task_status
            )
        )
        try:
            yield backend, apps[0]
        finally:
            nursery.cancel_scope.cancel()


def query_reads(view: Any) -> set[str]:
    """The query parameters a view function reads (from its source)."""
    source = inspect.getsource(view)
    names = {next(g for g in m.groups() if g) for m in _READS.finditer(source)}
    for model_name in _MODEL_READS.findall(source):
        model = inspect.unwrap(view).__globals__[model_name]
        names |= set(model.model_fields)
    return names


def operations(app: Any) -> list[tuple[str, str, Any]]:
    """(METHOD, /path/{var}, view) for every documented route of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, QUART_SCHEMA_HIDDEN_ATTRIBUTE, False):
            continue
        path = _VARIABLE.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, path, view))
    return out


def resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def success_schema(document: dict, method: str, path: str) -> tuple[str, dict]:
    responses = document["paths"][path][method.lower()]["responses"]
    codes = [c for c in responses if c.startswith("2")]
    assert len(codes) == 1, (method, path, codes)
    content = responses[codes[0]].get("content")
    assert content, f"{method} {path}: no content for {codes[0]}"
    kind, media = next(iter(content.items()))
    assert "schema" in media, (method, path)
    return kind, media["schema"]


def validate(answer: Any, method: str, path: str, document: dict) -> None:
    kind, schema = success_schema(document, method, path)
    assert kind == "application/json"
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(
        answer
    )


async def test_every_route_documents_its_query_and_answer(tmp_path):
    async with backend_and_app(tmp_path) as (backend, app), api(backend) as client:
        document = (await client.get("/openapi.json")).json()
        found = operations(app)
        assert len(found) > 50
        problems = []
        for method, path, view in found:
            where = f"{method} {path}"
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                problems.append(f"{where}: not in /openapi.json")
                continue
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            read = query_reads(view)
            if read != documented:
                problems.append(f"{where}: reads {sorted(read)}, documents {sorted(documented)}")
            try:
                kind, schema = success_schema(document, method, path)
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            if kind == "application/json":
                resolved = resolve(schema, document)
                if not resolved.get("properties"):
                    problems.append(f"{where}: the answer's schema names no fields")
                jsonschema.Draft202012Validator.check_schema(resolved)
        assert problems == []


async def test_query_parameters_carry_the_bounds_the_route_enforces(tmp_path):
    async with backend_and_app(tmp_path) as (backend, _), api(backend) as client:
        document = (await client.get("/openapi.json")).json()
        params = {p["name"]: p for p in document["paths"]["/transactions"]["get"]["parameters"]}
        assert params["limit"]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": 50,
        }
        assert params["active"]["schema"]["type"] == "boolean"
        # the documented bounds are the route's: just outside them is a 400
        assert (await client.get("/transactions", params={"limit": 1000})).status_code == 200
        assert (await client.get("/transactions", params={"limit": 1001})).status_code == 400
        diagnosis = document["paths"]["/chargers/{cp_id}/diagnosis"]["get"]["parameters"]
        assert {"id_tag", "connector_id", "probe", "evidence"} <= {p["name"] for p in diagnosis}
        reservations = {
            p["name"]: p for p in document["paths"]["/reservations"]["get"]["parameters"]
        }
        assert "Reserved" in reservations["status"]["schema"]["enum"]


@pytest.mark.slow
async def test_real_answers_validate_against_the_documented_schemas(tmp_path):
    async with (
        backend_and_app(tmp_path) as (backend, _),
        charger_running(backend),
        api(backend) as client,
    ):
        document = (await client.get("/openapi.json")).json()
        started = await client.post(
            "/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        validate(started.json(), "POST", "/commands/remote_start/{cp_id}", document)

        async def running():
            txs = (await client.get("/transactions", params={"active": "true"})).json()
            return txs["transactions"]

        tx = (await wait_for(running))[0]
        reserved = await client.post(
            "/commands/reserve_now/EVSE001",
            json={"id_tag": "OTHER", "connector_id": 1, "expiry_date": "2099-01-01T00:00:00Z"},
        )
        validate(reserved.json(), "POST", "/commands/reserve_now/{cp_id}", document)
        ticket = await client.post("/tickets", json={"cp_id": "EVSE001", "summary": "test"})
        validate(ticket.json(), "POST", "/tickets", document)
        tag = await client.post("/id_tags", json={"id_tag": "CARD1"})
        validate(tag.json(), "POST", "/id_tags", document)
        samples = [
            ("/", "/", None),
            ("/status", "/status", None),
            ("/chargers", "/chargers", None),
            ("/chargers/EVSE001", "/chargers/{cp_id}", None),
            ("/chargers/EVSE001/messages", "/chargers/{cp_id}/messages", {"limit": 5}),
            ("/chargers/EVSE001/local_list", "/chargers/{cp_id}/local_list", None),
            ("/chargers/EVSE001/firmware", "/chargers/{cp_id}/firmware", None),
            (
                "/chargers/EVSE001/charging_profiles",
                "/chargers/{cp_id}/charging_profiles",
                {"status": "all"},
            ),
            ("/chargers/EVSE001/security", "/chargers/{cp_id}/security", None),
            ("/chargers/EVSE001/security_events", "/chargers/{cp_id}/security_events", None),
            ("/chargers/EVSE001/meter_history", "/chargers/{cp_id}/meter_history", None),
            (
                "/chargers/EVSE001/diagnosis",
                "/chargers/{cp_id}/diagnosis",
                {"connector_id": 1, "id_tag": "USER123"},
            ),
            ("/transactions", "/transactions", {"active": "true"}),
            (f"/transactions/{tx['transaction_id']}", "/transactions/{transaction_id}", None),
            ("/transactions/unmatched_stops", "/transactions/unmatched_stops", None),
            ("/reservations", "/reservations", None),
            ("/id_tags", "/id_tags", None),
            ("/tickets", "/tickets", None),
            ("/demo/scenarios", "/demo/scenarios", None),
        ]
        for url, path, params in samples:
            answer = await client.get(url, params=params)
            assert answer.status_code == 200, (url, answer.text)
            validate(answer.json(), "GET", path, document)
        assert (await client.get("/reservations")).json()["reservations"]  # not vacuous
        triggered = await client.post("/demo/trigger/slow_charging", json={})
        validate(triggered.json(), "POST", "/demo/trigger/{name}", document)
        cleared = await client.post("/demo/clear")
        validate(cleared.json(), "POST", "/demo/clear", document)
        reset = await client.post("/commands/reset/EVSE001", json={"type": "Soft"})
        validate(reset.json(), "POST", "/commands/reset/{cp_id}", document)
        # and the schemas are not vacuous: a wrong answer fails them
        with pytest.raises(jsonschema.ValidationError):
            validate({"cp_id": "EVSE001"}, "GET", "/chargers/{cp_id}", document)
        events = await client.get("/openapi.json")
        kind, _ = success_schema(events.json(), "GET", "/events")
        assert kind == "text/event-stream"
