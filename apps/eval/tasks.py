"""Evaluation tasks as data: loaded from JSON files, validated field by field.

A task file holds one task (an object with ``id``) or a family (``{"family": ...,
"policy": "policy.md", "tasks": [...]}``; the family's ``defaults`` are merged into each
task). The schema is in docs/evaluation.md; :func:`load_tasks` names the file and the
field of the first mistake in one line (:class:`TaskError`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ocpp.v16.enums import Action, ChargePointStatus

from libv4e.sandbox import ASSERTIONS, InitialState, InvalidInitialState

from ..csms.tools import TOOLS_BY_NAME
from .voice import spoken_form

__all__ = [
    "BUILTIN",
    "Criteria",
    "DriverSpec",
    "Task",
    "TaskError",
    "Utterance",
    "load_tasks",
]

BUILTIN = Path(__file__).parent / "suite"
"""The built-in suite: one JSON file per family, and policy.md."""

DRIVER_ACTIONS = ("plug_in", "unplug", "present_card", "press_stop")
GOALS = ("charging", "unplugged", "informed")
INTENTS = ("charge", "leave")
REWARD_BASIS = ("state", "communicate")
STOPS = ("done", "transfer", "out_of_scope")


class TaskError(ValueError):
    """A task file that cannot be used: ``file``, ``field`` (dotted, with indices) and
    what is wrong; ``str()`` is the one line to print."""

    def __init__(self, file: str, field: str, message: str) -> None:
        super().__init__(f"{file}: {field}: {message}")
        self.file, self.field, self.message = file, field, message


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One thing the driver says: paraphrase ``variants`` (one is picked per trial from
    the seed) and, for each, its ``spoken`` form (what a voice transcriber hears: ids
    read out letter by letter, digits as words)."""

    variants: tuple[str, ...]
    spoken: tuple[str, ...]

    def pick(self, rng: random.Random) -> tuple[str, str]:
        """A variant and its spoken form."""
        i = rng.randrange(len(self.variants))
        return self.variants[i], self.spoken[i]


@dataclasses.dataclass(frozen=True)
class DriverSpec:
    """The simulated driver: who they are, where they are, what they know and want."""

    persona: str
    reason: str
    charger: str
    connector: int
    card: str
    opening: Utterance
    says_connector: int
    """The connector they name (the wrong one, when it differs from ``connector``)."""
    intent: str = "charge"
    goal: str = "charging"
    known: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    lines: tuple[Utterance, ...] = ()
    before_call: tuple[Mapping[str, Any], ...] = ()
    """Driver actions taken before calling (e.g. presenting the card)."""
    leaves_after: int | None = None
    """Hang up after this many agent turns (a driver who leaves)."""
    gives_up: str = "transfer"
    """How the call ends when the driver runs out of things to say unsatisfied."""


@dataclasses.dataclass(frozen=True)
class Criteria:
    """How an episode is judged: assertions on the final snapshot (``state``) and
    information the agent must say (``communicate``); ``reward_basis`` names which count."""

    assertions: tuple[Mapping[str, Any], ...]
    communicate: tuple[Any, ...] = ()
    reward_basis: tuple[str, ...] = REWARD_BASIS


@dataclasses.dataclass(frozen=True)
class Task:
    """One support call to evaluate."""

    id: str
    family: str
    description: str
    driver: DriverSpec
    initial_state: InitialState
    criteria: Criteria
    policy: str
    file: str
    max_turns: int = 12
    raw_state: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def load_tasks(path: str | Path | None = None) -> list[Task]:
    """The tasks of ``path`` (a JSON file, or a directory of them, read in name order);
    the built-in suite by default. Raises :class:`TaskError` naming file and field."""
    root = Path(path) if path is not None else BUILTIN
    if root.is_dir():
        files = sorted(f for f in root.glob("*.json") if not f.name.startswith("."))
        if not files:
            raise TaskError(str(root), "-", "no *.json task files in this directory")
    elif root.is_file():
        files = [root]
    else:
        raise TaskError(str(root), "-", "no such file or directory")
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for file in files:
        for task in _load_file(file):
            if task.id in seen:
                raise TaskError(task.file, "id", f"{task.id!r} is also defined in {seen[task.id]}")
            seen[task.id] = task.file
            tasks.append(task)
    return tasks


def _load_file(file: Path) -> list[Task]:
    name = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise TaskError(name, f"line {exc.lineno}", f"not JSON: {exc.msg}") from None
    except OSError as exc:
        raise TaskError(name, "-", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TaskError(name, "-", f"not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise TaskError(name, "-", "not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise TaskError(name, "-", f"not usable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TaskError(name, "-", "must be a JSON object (a task, or a family with tasks)")
    if "tasks" not in data:
        return [_task(name, data, "", {}, "", _policy(name, file, None))]
    _known(name, "", data, {"family", "description", "policy", "defaults", "tasks"})
    family = data.get("family", file.stem)
    if not isinstance(family, str) or not family:
        raise TaskError(name, "family", "must be a non-empty string")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise TaskError(name, "defaults", "must be an object")
    policy = _policy(name, file, data.get("policy"))
    raw = data["tasks"]
    if not isinstance(raw, list) or not raw:
        raise TaskError(name, "tasks", "must be a non-empty list")
    tasks = []
    for i, item in enumerate(raw):
        try:
            tasks.append(_task(name, item, f"tasks[{i}].", defaults, family, policy))
        except TaskError as exc:
            raise _in_defaults(exc, i, item, defaults) from None
    return tasks


def _in_defaults(exc: TaskError, i: int, item: Any, defaults: Mapping[str, Any]) -> TaskError:
    """``exc`` named in ``defaults`` when the field came from there, not from the task."""
    prefix = f"tasks[{i}]."
    if not exc.field.startswith(prefix):
        return exc
    sub = exc.field.removeprefix(prefix)
    if _has(item, sub) or not _has(defaults, sub):
        return exc
    return TaskError(exc.file, f"defaults.{sub}", f"{exc.message} (for tasks[{i}])")


def _has(obj: Any, path: str) -> bool:
    """Whether ``obj`` holds the dotted ``path`` (with ``[i]`` indices)."""
    for part in path.split("."):
        key, *indices = part.split("[")
        if key:
            if not isinstance(obj, dict) or key not in obj:
                return False
            obj = obj[key]
        for index in indices:
            n = int(index.rstrip("]"))
            if not isinstance(obj, list) or n >= len(obj):
                return False
            obj = obj[n]
    return True


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON number")


def _policy(name: str, file: Path, value: Any) -> str:
    if value is None:
        value = "policy.md"
        if not (file.parent / value).is_file():
            return ""
    if not isinstance(value, str):
        raise TaskError(name, "policy", "must be the name of a Markdown file beside this one")
    target = file.parent / value
    try:
        if not target.is_file():
            raise TaskError(name, "policy", f"no file {value[:80]!r} beside the task file")
        return target.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TaskError(name, "policy", f"cannot read {value[:80]!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TaskError(name, "policy", f"{value[:80]!r} is not UTF-8 (byte {exc.start})") from None


def _known(name: str, where: str, obj: Mapping[str, Any], allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise TaskError(
                name, f"{where}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})"
            )


def _merge(defaults: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in item.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


TASK_FIELDS = {
    "id",
    "family",
    "description",
    "driver",
    "initial_state",
    "evaluation",
    "max_turns",
}
DRIVER_FIELDS = {
    "persona",
    "reason",
    "charger",
    "connector",
    "says_connector",
    "card",
    "intent",
    "goal",
    "known",
    "unknown",
    "opening",
    "lines",
    "before_call",
    "leaves_after",
    "gives_up",
}


def _task(
    name: str,
    item: Any,
    at: str,
    defaults: Mapping[str, Any],
    family: str,
    policy: str,
) -> Task:
    if not isinstance(item, dict):
        raise TaskError(name, at.rstrip(".") or "-", "must be an object")
    data = _merge(defaults, item)
    _known(name, at, data, TASK_FIELDS)
    task_id = _text(name, f"{at}id", data.get("id"), limit=80)
    family = data.get("family", family) or task_id.split("/")[0]
    if not isinstance(family, str):
        raise TaskError(name, f"{at}family", "must be a string")
    raw_state = data.get("initial_state", {})
    if not isinstance(raw_state, dict):
        raise TaskError(name, f"{at}initial_state", "must be an object")
    try:
        state = InitialState.from_dict(raw_state)
    except InvalidInitialState as exc:
        reason = str(exc).removeprefix(f"{exc.field}: ")
        raise TaskError(name, f"{at}initial_state.{exc.field}", reason) from None
    driver = _driver(name, f"{at}driver.", data.get("driver"), state)
    criteria = _criteria(name, f"{at}evaluation.", data.get("evaluation"), state)
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise TaskError(name, f"{at}description", "must be a string (at most 2000 characters)")
    max_turns = data.get("max_turns", 12)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= 50:
        raise TaskError(name, f"{at}max_turns", "must be an integer from 1 to 50")
    return Task(
        task_id,
        family,
        description,
        driver,
        state,
        criteria,
        policy,
        name,
        max_turns,
        raw_state,
    )


def _text(name: str, field: str, value: Any, *, limit: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise TaskError(name, field, f"must be a non-empty string (at most {limit} characters)")
    return value


def _utterance(name: str, field: str, value: Any) -> Utterance:
    """A string, a list of paraphrases, or ``{"text": [...], "spoken": [...]}``."""
    spoken: list[str] | None = None
    if isinstance(value, dict):
        _known(name, f"{field}.", value, {"text", "spoken"})
        if "spoken" in value:
            raw_spoken = value["spoken"]
            spoken = [raw_spoken] if isinstance(raw_spoken, str) else raw_spoken
        value = value.get("text")
    variants = [value] if isinstance(value, str) else value
    if not isinstance(variants, list) or not variants:
        raise TaskError(name, field, "must be a string or a non-empty list of paraphrases")
    texts = tuple(_text(name, f"{field}[{i}]", v, limit=500) for i, v in enumerate(variants))
    if spoken is None:
        return Utterance(texts, tuple(spoken_form(t) for t in texts))
    if not isinstance(spoken, list) or len(spoken) != len(texts):
        raise TaskError(name, f"{field}.spoken", "must give one spoken form per paraphrase")
    forms = tuple(_text(name, f"{field}.spoken[{i}]", v, limit=500) for i, v in enumerate(spoken))
    return Utterance(texts, forms)


def _strings(name: str, field: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskError(name, field, "must be a list of strings")
    return tuple(value)


def _driver(name: str, at: str, raw: Any, state: InitialState) -> DriverSpec:
    if not isinstance(raw, dict):
        raise TaskError(name, at.rstrip("."), "must be an object")
    _known(name, at, raw, DRIVER_FIELDS)
    charger = raw.get("charger", state.chargers[0].cp_id)
    spec = state.charger(charger) if isinstance(charger, str) else None
    if spec is None:
        raise TaskError(name, f"{at}charger", f"no charger {charger!r} in initial_state")

    def connector(key: str, default: int) -> int:
        value = raw.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= spec.connectors
        ):
            raise TaskError(
                name, f"{at}{key}", f"must be a connector of {spec.cp_id} (1..{spec.connectors})"
            )
        return value

    plug = connector("connector", 1)
    says = connector("says_connector", plug)
    card = _text(name, f"{at}card", raw.get("card"), limit=20)
    choices = {"intent": INTENTS, "goal": GOALS, "gives_up": STOPS}
    picked = {}
    for key, allowed in choices.items():
        value = raw.get(key, {"intent": "charge", "goal": "charging", "gives_up": "transfer"}[key])
        if value not in allowed:
            raise TaskError(
                name, f"{at}{key}", f"must be one of {', '.join(allowed)} (got {value!r})"
            )
        picked[key] = value
    lines = raw.get("lines", [])
    if not isinstance(lines, list):
        raise TaskError(name, f"{at}lines", "must be a list of utterances")
    before = raw.get("before_call", [])
    if not isinstance(before, list):
        raise TaskError(name, f"{at}before_call", "must be a list of driver actions")
    actions = []
    for i, step in enumerate(before):
        where = f"{at}before_call[{i}]"
        if not isinstance(step, dict):
            raise TaskError(name, where, "must be an object")
        _known(name, f"{where}.", step, {"action", "connector_id"})
        if step.get("action") not in DRIVER_ACTIONS:
            raise TaskError(name, f"{where}.action", f"must be one of {', '.join(DRIVER_ACTIONS)}")
        cid = step.get("connector_id", plug)
        if isinstance(cid, bool) or not isinstance(cid, int) or not 1 <= cid <= spec.connectors:
            raise TaskError(
                name,
                f"{where}.connector_id",
                f"must be a connector of {spec.cp_id} (1..{spec.connectors})",
            )
        actions.append({"action": step["action"], "connector_id": cid})
    leaves = raw.get("leaves_after")
    if leaves is not None and (
        isinstance(leaves, bool) or not isinstance(leaves, int) or leaves < 1
    ):
        raise TaskError(name, f"{at}leaves_after", "must be an integer ≥ 1")
    return DriverSpec(
        persona=_text(name, f"{at}persona", raw.get("persona"), limit=500),
        reason=_text(name, f"{at}reason", raw.get("reason"), limit=500),
        charger=spec.cp_id,
        connector=plug,
        card=card,
        opening=_utterance(name, f"{at}opening", raw.get("opening")),
        says_connector=says,
        intent=picked["intent"],
        goal=picked["goal"],
        known=_strings(name, f"{at}known", raw.get("known")),
        unknown=_strings(name, f"{at}unknown", raw.get("unknown")),
        lines=tuple(_utterance(name, f"{at}lines[{i}]", v) for i, v in enumerate(lines)),
        before_call=tuple(actions),
        leaves_after=leaves,
        gives_up=picked["gives_up"],
    )


def _criteria(name: str, at: str, raw: Any, state: InitialState) -> Criteria:
    if not isinstance(raw, dict):
        raise TaskError(name, at.rstrip("."), "must be an object")
    _known(name, at, raw, {"assertions", "communicate", "reward_basis"})
    assertions = raw.get("assertions", [])
    if not isinstance(assertions, list):
        raise TaskError(name, f"{at}assertions", "must be a list")
    for i, spec in enumerate(assertions):
        _assertion(name, f"{at}assertions[{i}]", spec, state)
    communicate = raw.get("communicate", [])
    if not isinstance(communicate, list):
        raise TaskError(name, f"{at}communicate", "must be a list")
    for i, item in enumerate(communicate):
        where = f"{at}communicate[{i}]"
        if item == "ticket_number":
            continue
        if isinstance(item, dict) and set(item) == {"any_of"}:
            phrases = _strings(name, f"{where}.any_of", item["any_of"])
            if any(not p.strip() for p in phrases):
                raise TaskError(name, f"{where}.any_of", "an empty phrase is in every answer")
            if phrases:
                continue
        raise TaskError(name, where, 'must be "ticket_number" or {"any_of": [phrases]}')
    basis = raw.get("reward_basis", list(REWARD_BASIS))
    if not isinstance(basis, list) or not basis or any(b not in REWARD_BASIS for b in basis):
        raise TaskError(
            name, f"{at}reward_basis", f"must be a non-empty list of {', '.join(REWARD_BASIS)}"
        )
    if not assertions and "state" in basis:
        raise TaskError(name, f"{at}assertions", "a reward based on state needs assertions")
    return Criteria(tuple(assertions), tuple(communicate), tuple(basis))


def _assertion(name: str, where: str, spec: Any, state: InitialState) -> None:
    if not isinstance(spec, dict):
        raise TaskError(name, where, 'must be an object like {"assert": "session_running", ...}')
    kind = spec.get("assert")
    func = ASSERTIONS.get(kind) if isinstance(kind, str) else None
    if func is None:
        raise TaskError(name, f"{where}.assert", f"must be one of {', '.join(ASSERTIONS)}")
    args = {k: v for k, v in spec.items() if k != "assert"}
    if func.__name__ == "no_forbidden":
        args["tool_calls"] = []
    try:
        inspect.signature(func).bind({}, **args)
    except TypeError as exc:
        raise TaskError(name, where, f"{spec['assert']}: {exc}") from None
    for key, value in args.items():
        if key in _ARG_TYPES and not _ARG_TYPES[key][0](value):
            raise TaskError(name, f"{where}.{key}", f"must be {_ARG_TYPES[key][1]}")
    for command in args.get("commands", []):
        action, _, kind = command.partition(":")
        if action not in OCPP_ACTIONS or (kind and kind not in COMMAND_KINDS.get(action, ())):
            raise TaskError(
                name,
                f"{where}.commands",
                f"{command!r} is not an OCPP 1.6 action (e.g. Reset, Reset:Hard, "
                "UnlockConnector, ChangeAvailability:Inoperative)",
            )
    status = args.get("status", [])
    for one in [status] if isinstance(status, str) else status:
        if one not in CONNECTOR_STATUSES:
            raise TaskError(
                name,
                f"{where}.status",
                f"{one!r} is not a connector status ({', '.join(sorted(CONNECTOR_STATUSES))})",
            )
    for tool in args.get("tools", []):
        if tool not in TOOLS_BY_NAME:
            raise TaskError(name, f"{where}.tools", f"{tool!r} is not a tool name")
    if "cp_id" in args:
        charger = state.charger(args["cp_id"])
        if charger is None:
            raise TaskError(
                name, f"{where}.cp_id", f"no charger {args['cp_id']!r} in initial_state"
            )
        if args.get("connector_id", 1) > charger.connectors:
            raise TaskError(
                name,
                f"{where}.connector_id",
                f"{charger.cp_id} has connectors 1..{charger.connectors}",
            )


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _is_texts(v: Any) -> bool:
    return isinstance(v, list) and all(_is_text(x) for x in v)


OCPP_ACTIONS = frozenset(a.value for a in Action)
CONNECTOR_STATUSES = frozenset(s.value for s in ChargePointStatus)
COMMAND_KINDS = {"Reset": ("Hard", "Soft"), "ChangeAvailability": ("Inoperative", "Operative")}
"""The ``Action:type`` forms ``no_forbidden`` can tell apart."""

_ARG_TYPES: dict[str, tuple[Any, str]] = {
    "id_tag": (_is_text, "a non-empty string"),
    "cp_id": (_is_text, "a non-empty string"),
    "category": (_is_text, "a non-empty string"),
    "connector_id": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer ≥ 1",
    ),
    "min_kw": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf,
        "a number ≥ 0",
    ),
    "status": (lambda v: _is_text(v) or (_is_texts(v) and v), "a status or a list of them"),
    "except_tags": (_is_texts, "a list of card ids"),
    "commands": (_is_texts, 'a list of OCPP actions (e.g. ["Reset"])'),
    "tools": (_is_texts, "a list of tool names"),
}
"""The assertions' arguments by name: a check of the value and what it must be (a string
where a list belongs would be read letter by letter: a silent pass)."""


def task_summary(tasks: Sequence[Task]) -> dict[str, int]:
    """How many tasks each family has."""
    out: dict[str, int] = {}
    for t in tasks:
        out[t.family] = out.get(t.family, 0) + 1
    return out
