"""The machinery of the agent tools (:mod:`libv4e_apps.csms.tools` defines them): a
:class:`Tool` is an API call with the JSON schema of its arguments, taken from the
REST API's pydantic request models (:func:`model_params`); :func:`strict_parameters`
is that schema in OpenAI's strict mode (every property required, optional ones
nullable, ``additionalProperties: false``, only keywords strict mode accepts; free-form
objects are passed as JSON strings)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel

Where = Literal["path", "query", "body"]


@dataclasses.dataclass(frozen=True)
class Param:
    """One tool parameter: its JSON schema, whether it is required, where it goes."""

    schema: dict[str, Any]
    required: bool = True
    where: Where = "body"


_DROP = frozenset({"title", "default", "examples"})


def _clean(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic property schema made self-contained and plain: $refs inlined, titles
    and defaults dropped, ``X | None`` reduced to X (optionality is ``required``'s job)."""
    if "$ref" in schema:
        schema = {
            **defs[schema["$ref"].rsplit("/", 1)[1]],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    out = {k: v for k, v in schema.items() if k not in _DROP}
    if "anyOf" in out:
        branches = [_clean(b, defs) for b in out["anyOf"] if b.get("type") != "null"]
        del out["anyOf"]
        if len(branches) == 1:
            out = {**branches[0], **out}
        else:
            out["anyOf"] = branches
    if "properties" in out:
        out["properties"] = {k: _clean(v, defs) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _clean(out["items"], defs)
    return out


def model_params(model: type[BaseModel], where: Where) -> dict[str, Param]:
    """The fields of a request model as tool parameters."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    return {
        name: Param(_clean(prop, defs), name in required, where)
        for name, prop in schema.get("properties", {}).items()
    }


@dataclasses.dataclass(frozen=True)
class Tool:
    """A tool: the description an LLM reads, and the API call it makes. Parameters come
    from ``params`` (path parameters, hand-written ones) and the route's ``body`` and
    ``query`` models."""

    name: str
    description: str
    method: str
    path: str
    params: dict[str, Param] = dataclasses.field(default_factory=dict)
    read_only: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None

    @property
    def all_params(self) -> dict[str, Param]:
        """Path parameters first, then the query's and the body's fields."""
        out = dict(self.params)
        if self.query is not None:
            out.update({k: v for k, v in model_params(self.query, "query").items() if k not in out})
        if self.body is not None:
            out.update({k: v for k, v in model_params(self.body, "body").items() if k not in out})
        return out

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the tool's arguments."""
        params = self.all_params
        return {
            "type": "object",
            "properties": {name: p.schema for name, p in params.items()},
            "required": [name for name, p in params.items() if p.required],
            "additionalProperties": False,
        }

    def request(self, arguments: dict[str, Any]) -> tuple[str, str, dict[str, Any], Any]:
        """(method, path, query, body) for ``arguments``; ValueError if they do not fit.

        None stands for "not given" (strict-mode clients send every property); a JSON
        string is accepted where the schema wants an object."""
        params = self.all_params
        unknown = set(arguments) - set(params)
        if unknown:
            raise ValueError(f"unknown argument(s): {', '.join(sorted(unknown))}")
        missing = [n for n, p in params.items() if p.required and arguments.get(n) is None]
        if missing:
            raise ValueError(f"missing argument(s): {', '.join(missing)}")
        path, query, body = self.path, {}, {}
        for name, param in params.items():
            value = arguments.get(name)
            if value is None:
                continue
            if param.schema.get("type") == "object" and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{name} must be a JSON object: {exc}") from None
            if param.where == "path":
                path = path.replace("{" + name + "}", path_segment(name, value, param.schema))
            elif param.where == "query":
                query[name] = str(value).lower() if isinstance(value, bool) else value
            else:
                body[name] = value
        return self.method, path, query, (body if self.method != "GET" else None)


STRICT_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
    }
)
"""The JSON-schema keywords kept in the strict export; the others (lengths, ranges,
formats) are moved into the description, which strict mode always accepts."""

_HINTS = {
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minimum": "minimum {}",
    "maximum": "maximum {}",
    "exclusiveMinimum": "greater than {}",
    "exclusiveMaximum": "less than {}",
    "format": "format {}",
    "pattern": "pattern {}",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
}


def _strict(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    hints = [_HINTS[k].format(v) for k, v in schema.items() if k in _HINTS]
    if schema.get("type") == "object" and "properties" not in schema:
        # a free-form object: strict mode wants every property declared; send JSON text
        hints.append("a JSON object encoded as a string")
        schema = {"type": "string", "description": schema.get("description", "")}
    for key, value in schema.items():
        if key not in STRICT_KEYWORDS:
            continue
        if key == "properties":
            value = {k: _strict(v, k not in schema.get("required", [])) for k, v in value.items()}
        elif key == "items":
            value = _strict(value, False)
        elif key == "anyOf":
            value = [_strict(v, False) for v in value]
        out[key] = copy.deepcopy(value)
    if out.get("type") == "object":
        out["required"] = list(out.get("properties", {}))
        out["additionalProperties"] = False
    if hints:
        text = out.get("description", "").rstrip(".")
        out["description"] = (text + "; " if text else "") + ", ".join(hints) + "."
    if nullable:
        if isinstance(out.get("type"), str) and "anyOf" not in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            description = out.pop("description", None)
            out = {"anyOf": [out, {"type": "null"}]}
            if description:
                out["description"] = description
    return out


def strict_parameters(tool: Tool) -> dict[str, Any]:
    """``tool``'s arguments as an OpenAI strict-mode schema."""
    return _strict(tool.input_schema(), False)


_UNSAFE_SEGMENT = re.compile(r"[/?#%\\\x00-\x1f\x7f]")


def path_segment(name: str, value: Any, schema: dict[str, Any]) -> str:
    """``value`` as one URL path segment, or ValueError: it must fit the parameter's
    ``pattern`` when it has one, and never carries what would leave its segment (``/``,
    ``?``, ``#``, ``%``, a backslash, control characters, ``.`` or ``..``): a tool argument
    ``../id_tags`` or ``EVSE001/diagnosis?probe=true`` must not reach another route."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string")
    text = str(value)
    pattern = schema.get("pattern")
    if pattern is not None and not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), text):
        raise ValueError(f"{name} {text!r} is not valid (pattern {pattern})")
    if not text or text in (".", "..") or _UNSAFE_SEGMENT.search(text):
        raise ValueError(f"{name} {text!r} is not a valid path segment")
    return urllib.parse.quote(text, safe="")
