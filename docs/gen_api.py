"""Generate docs/api.md from the REST API's OpenAPI document (run: nox -s docs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from libv4e import CentralSystem, SqliteStore
from libv4e_apps.csms.api import create_app


async def openapi() -> dict:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        app = create_app(CentralSystem(store))
        response = await app.test_client().get("/openapi.json")
        return json.loads(await response.get_data())
    finally:
        await store.close()


def _type_name(prop: dict) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].split('/')[-1]}](#{prop['$ref'].split('/')[-1].lower()})"
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        return f"array of {_type_name(prop['items'])}"
    return prop.get("type", "?")


def schema_fields(schema: dict, components: dict) -> list[str]:
    ref = schema.get("$ref")
    if ref:
        schema = components[ref.split("/")[-1]]
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        kind = _type_name(prop) if ("$ref" in prop or "items" in prop) else prop.get("type")
        kind = kind or " or ".join(_type_name(p) for p in prop.get("anyOf", []))
        if "enum" in prop:
            kind = " \\| ".join(f"`{v}`" for v in prop["enum"])
        elif prop.get("anyOf") and any("enum" in p for p in prop["anyOf"]):
            kind = " \\| ".join(f"`{v}`" for p in prop["anyOf"] for v in p.get("enum", []))
        note = (prop.get("description") or "").replace("\n", " ")
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else 'no'} | {note} |")
    return rows


def nested_models(schema: dict, components: dict, seen: set[str]) -> list[str]:
    """Names of the component schemas a body refers to, depth first, each once."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.split("/")[-1]
                if name not in seen:
                    seen.add(name)
                    found.append(name)
                    walk(components.get(name, {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema.get("properties", schema))
    return found


def render(doc: dict) -> str:
    components = doc.get("components", {}).get("schemas", {})
    out = [
        "# REST API reference",
        "",
        "Generated from the OpenAPI document served at `/openapi.json` "
        "(`nox -s docs` regenerates this page). Every answer is JSON; every error is "
        '`{"error": code, "message": text, ...}` with its HTTP status: 400 malformed '
        "JSON or query, 401 missing API token, 404 unknown charger / command / scenario / "
        "charger not connected, 409 scenario or reservation id conflict, 413 body too large, "
        "422 invalid body (naming the fields), 502 charger answered with a CallError (its code in "
        "`ocpp_error_code`) or disconnected, 503 database unavailable, 504 charger did not "
        "answer in time.",
        "",
    ]
    nested: list[str] = []
    seen: set[str] = set()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            out.append(f"## `{method.upper()} {path}`")
            out.append("")
            parts = [op.get("summary") or "", op.get("description") or ""]
            text = " ".join(" ".join(p.split()) for p in parts if p).strip()
            if text:
                out += [text, ""]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body.get("schema"):
                rows = schema_fields(body["schema"], components)
                if rows:
                    out += ["| field | type | required | notes |", "|---|---|---|---|", *rows, ""]
                ref = body["schema"].get("$ref", "")
                root = components.get(ref.split("/")[-1], body["schema"])
                nested += nested_models(root, components, seen)
    if nested:
        out += ["## Objects used in bodies", ""]
    for name in nested:
        schema = components[name]
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        rows = schema_fields(schema, components)
        out += ["| field | type | required | notes |", "|---|---|---|---|", *rows, ""]
    return "\n".join(out) + "\n"


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/api.md")
    target.write_text(render(trio.run(openapi)))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
