"""Schema-driven fuzzing of the REST API with schemathesis, against the real server.

Why schemathesis (a test dependency): it derives requests from our OpenAPI document
(valid and invalid ones) and checks each answer against the same document — status codes,
content types, response schemas, ``Allow`` on 405, no 5xx. That keeps ``/openapi.json``
true as routes change, which hand-written tests do not.
"""

from __future__ import annotations

import threading

import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.support import running_backend


@pytest.fixture(scope="module")
def api_base(tmp_path_factory):
    """A backend on 127.0.0.1 in a thread of its own (schemathesis is synchronous)."""
    ready = threading.Event()
    found: dict = {}

    async def main():
        found["stop"] = trio.Event()
        found["token"] = trio.lowlevel.current_trio_token()
        async with running_backend(str(tmp_path_factory.mktemp("st") / "v4e.db")) as backend:
            found["base"] = f"http://127.0.0.1:{backend.api_port}"
            ready.set()
            await found["stop"].wait()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(20)
    yield found["base"]
    trio.from_thread.run_sync(found["stop"].set, trio_token=found["token"])
    thread.join(10)


CHECKED_BEYOND_THE_DOCUMENT = {
    # free-form OCPP objects (charging profiles) are validated against the OCPP 1.6 JSON
    # schema, which the OpenAPI document does not repeat: a schema-valid body may be 422
    "POST /commands/remote_start/{cp_id}",
    "POST /commands/set_charging_profile/{cp_id}",
    # "printable" (str.isprintable) has no JSON-schema pattern: some strings are 422
    "PUT /chargers/{cp_id}/password",
    # a date-time that UTC cannot hold (0001-01-01T00:00+01:00) is valid RFC 3339 but
    # cannot be sent in OCPP (UTC): 422
    "POST /commands/reserve_now/{cp_id}",
    "POST /commands/get_diagnostics/{cp_id}",
    "POST /commands/update_firmware/{cp_id}",
    "POST /id_tags",
    # one of two forms (id_tag: one card, or update_type: an OCPP update), each with its
    # rules (no duplicate tags, a Full entry needs id_tag_info): checked by the model
    "POST /commands/send_local_list/{cp_id}",
    # security extension: a PEM certificate (parsed), oldest ≤ latest, profile 3 needs a CA
    "POST /commands/install_certificate/{cp_id}",
    "POST /commands/signed_update_firmware/{cp_id}",
    "POST /commands/get_log/{cp_id}",
    "PUT /chargers/{cp_id}/security_profile",
    "POST /chargers/{cp_id}/authorization_key",
    # a webhook URL that fits the pattern must also parse (http://a:b:c/ has no valid port)
    "POST /webhooks",
}
"""Operations where a schema-valid request may still be refused (the acceptance check is
skipped for them; every other check — documented status, content type, response shape,
no 5xx — still runs)."""


STREAMS = {"GET /events"}
"""Never-ending answers (server-sent events): each case would wait out the client's
timeout. Their query is checked in tests/apps/test_agent_events.py (filters, 400 for an
unknown kind); their document entry in tests/apps/test_openapi_complete.py."""


@pytest.mark.slow
def test_api_answers_as_its_openapi_document_says(api_base):
    schema = schemathesis.openapi.from_url(f"{api_base}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        if f"{operation.method.upper()} {operation.path}" in STREAMS:
            continue
        excluded = []
        if f"{operation.method.upper()} {operation.path}" in CHECKED_BEYOND_THE_DOCUMENT:
            excluded = [positive_data_acceptance]
        try:
            _fuzz(operation, api_base, excluded)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation, api_base, excluded):
    from hypothesis import given

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(base_url=api_base, timeout=10, excluded_checks=excluded)

    fuzz()


async def test_the_overview_lists_every_route_of_the_url_map():
    """``GET /`` is built from the app's URL map: every operation the OpenAPI document
    lists is in it (also routes added with ``extra``) but the overview itself and the
    dashboard's assets, each once, and nothing else but the documentation pages."""
    from libv4e import CentralSystem, SqliteStore
    from libv4e_apps.csms.api import create_app

    store = SqliteStore(":memory:")
    await store.open()
    try:

        def extra(app):
            @app.get("/extra/<int:n>")
            async def extra_route(n):
                return {"n": n}

        app = create_app(CentralSystem(store), extra=extra)
        client = app.test_client()
        overview = await (await client.get("/")).get_json()
        document = await (await client.get("/openapi.json")).get_json()
    finally:
        await store.close()
    listed = [*overview["routes"], *overview["commands"], *overview["demo_routes"]]
    assert len(listed) == len(set(listed))
    documented = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented - {"GET /", "GET /static/{name}"} <= set(listed)  # not itself, assets
    assert set(listed) - documented <= {
        "GET /openapi.json",
        "GET /docs",
        "GET /redocs",
        "GET /scalar",
    }
    assert "GET /extra/{n}" in overview["routes"]
    assert "POST /commands/reset/{cp_id}" in overview["commands"]
    assert "POST /commands/send_local_list/{cp_id}" in overview["commands"]
    assert "POST /demo/trigger/{name}" in overview["demo_routes"]
    assert not any("{name}/{cp_id}" in c for c in overview["commands"])  # the 404 catch-all
