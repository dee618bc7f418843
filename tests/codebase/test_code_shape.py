"""The shape of the code, checked on its syntax trees: what a reader copying from it
should not have to decode.

* OCPP-J message types and directions are named (:class:`~libv4e.protocol.MessageType`,
  :class:`~libv4e.transport.Direction`), never compared as bare ``2``/``3``/``4`` or
  ``"in"``/``"out"`` outside the sans-IO session that parses frames.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

from libv4e.protocol import MessageType
from libv4e.transport import Direction, MessageRecord
from tests.support import ROOT

SOURCES = sorted([*(ROOT / "libv4e").rglob("*.py"), *(ROOT / "apps").rglob("*.py")])
FRAME_PARSER = ROOT / "libv4e" / "protocol" / "_session.py"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_field(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == name


def _bare(node: ast.expr, kind: type) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, kind) and not isinstance(node.value, bool)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_bare(e, kind) for e in node.elts)
    return False


def bare_protocol_literals(tree: ast.Module) -> list[tuple[int, str]]:
    """``.message_type`` compared with an int literal, ``.direction`` with a str literal,
    and ``is_message``/``MessageRecord`` called with them."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for field, kind in (("message_type", int), ("direction", str)):
                if any(_is_field(s, field) for s in sides) and any(_bare(s, kind) for s in sides):
                    found.append((node.lineno, f"{field} compared with a bare literal"))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("is_message", "MessageRecord", "_observe") and any(
                _bare(a, int) or (isinstance(a, ast.Constant) and a.value in ("in", "out"))
                for a in node.args
            ):
                found.append((node.lineno, f"{name}() with a bare message type or direction"))
    return found


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if p != FRAME_PARSER], ids=lambda p: str(p.relative_to(ROOT))
)
def test_message_types_and_directions_are_named(path):
    assert bare_protocol_literals(_tree(path)) == []


def test_the_checker_finds_bare_literals():
    code = """
if record.message_type == 2 and r.direction != "out":
    pass
x = record.message_type in (3, 4)
is_message(r, 2, "Heartbeat", "in")
MessageRecord("CP", "in", 2, "u", None, {}, at)
"""
    assert sorted(line for line, _ in bare_protocol_literals(ast.parse(code))) == [2, 2, 4, 5, 6]


def test_message_records_are_typed_whatever_they_are_built_from():
    import datetime as dt

    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    record = MessageRecord("CP", "in", 2, "u", "Heartbeat", {}, at)  # as a log row holds it
    assert record.direction is Direction.IN and record.message_type is MessageType.CALL
    assert record == MessageRecord("CP", Direction.IN, MessageType.CALL, "u", "Heartbeat", {}, at)
    with pytest.raises(ValueError):
        MessageRecord("CP", "sideways", 2, "u", None, {}, at)
    with pytest.raises(ValueError):
        MessageRecord("CP", "in", 5, "u", None, {}, at)


# -- composition, not inheritance chains ------------------------------------------------------

MAX_PROJECT_BASES = 2


def _library_classes() -> list[type]:
    import importlib
    import inspect
    import pkgutil

    import libv4e

    classes: dict[str, type] = {}
    for info in pkgutil.walk_packages(libv4e.__path__, "libv4e."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name:
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(classes.values())


def project_bases(cls: type) -> list[str]:
    """The classes ``cls`` inherits from (directly or not) that are defined in libv4e."""
    return [
        f"{b.__module__}.{b.__qualname__}"
        for b in cls.__mro__[1:]
        if b.__module__.split(".")[0] == "libv4e"
    ]


def test_no_library_class_inherits_from_more_than_two_of_ours():
    """Objects hold their parts (a charger its outbox, meters, sessions, link and
    handlers): a class builds on at most two classes of the project. Exceptions aside (a
    hierarchy is what they are for), and so are typing Protocols: ``Store`` is the union of
    its role protocols, an interface written as their intersection, with no behaviour."""
    classes = [
        c
        for c in _library_classes()
        if not issubclass(c, BaseException) and not getattr(c, "_is_protocol", False)
    ]
    assert len(classes) > 100  # the walk sees the library
    towers = {
        f"{c.__module__}.{c.__qualname__}": project_bases(c)
        for c in classes
        if len(project_bases(c)) > MAX_PROJECT_BASES
    }
    assert towers == {}


def test_the_tower_check_counts_inherited_bases():
    namespace = {"__module__": "libv4e.fake"}
    a = type("A", (), namespace)
    b = type("B", (a,), namespace)
    c = type("C", (b,), namespace)
    d = type("D", (c, MessageRecord.__mro__[-1]), namespace)
    assert len(project_bases(c)) == 2
    assert len(project_bases(d)) == 3


# -- errors mapped at the seams only -----------------------------------------------------------


LIBRARY_ERRORS = {
    name
    for name, obj in vars(importlib.import_module("libv4e._errors")).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == "libv4e._errors"
}


def translations_midway(tree: ast.Module) -> list[int]:
    """Lines where an ``except`` clause catching one of libv4e's errors raises an
    OcppError (a store failure turned into a CALLERROR before the OCPP seam)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = set(ast.unparse(node.type).strip("()").replace(" ", "").split(","))
            if not caught & LIBRARY_ERRORS:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Raise) and inner.exc is not None:
                    raised = ast.unparse(inner.exc)
                    if raised.startswith("OcppError("):
                        found.append(inner.lineno)
    return found


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "libv4e").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_error_is_translated_to_a_callerror_midway(path):
    """OCPP CALLERRORs are made in one place (the session's ``send_failure``); a store
    failure travels up as itself."""
    assert translations_midway(_tree(path)) == []


def test_the_midway_check_finds_a_translation():
    code = """
try:
    await work
except StoreError as exc:
    raise OcppError(ErrorCode.INTERNAL_ERROR, "could not store") from exc
"""
    assert translations_midway(ast.parse(code)) == [5]


async def test_domain_errors_name_what_is_missing_and_stay_lookup_errors(tmp_path):
    from libv4e import CentralSystem, CsmsConfig
    from libv4e.csms import (
        ChargerConnectedError,
        SqliteStore,
        UnknownChargerError,
        UnknownTagError,
    )

    store = SqliteStore(":memory:")
    await store.open()
    csms = CentralSystem(store, CsmsConfig())
    await csms.load()
    with pytest.raises(UnknownChargerError) as info:
        await csms.delete_charger("NOPE")
    assert isinstance(info.value, KeyError) and info.value.cp_id == "NOPE"
    assert str(info.value) == "charge point NOPE is unknown"
    with pytest.raises(UnknownTagError) as tag:
        await csms.remove_tag("NOCARD")
    assert isinstance(tag.value, KeyError) and str(tag.value) == "id tag NOCARD is not in the list"
    with pytest.raises(UnknownChargerError):
        csms.registry.require("NOPE")
    assert issubclass(ChargerConnectedError, ValueError)


# -- one websocket path, trio-websocket an adapter -----------------------------------------------


def test_trio_websocket_is_an_adapter_not_a_patched_library():
    """libv4e changes nothing in trio-websocket (another user of it in the same process
    gets it as published): the adapter's bounds live in a subclass of its own."""
    import trio_websocket

    from libv4e.transport import _tws, serve_ocpp  # noqa: F401 - both imported

    for cls in (trio_websocket.WebSocketConnection, trio_websocket.WebSocketServer):
        for name, attr in vars(cls).items():
            if callable(attr):
                assert attr.__module__ == "trio_websocket._impl", (cls.__name__, name)
    assert issubclass(_tws.BoundedConnection, trio_websocket.WebSocketConnection)


def test_serve_and_open_take_one_path_whatever_the_transport():
    """serve_ocpp and open_ocpp ask for a transport and use it: no branch per transport."""
    import inspect

    from libv4e.transport import _websocket

    for function in (_websocket.serve_ocpp, _websocket.open_ocpp):
        source = inspect.getsource(function)
        assert "transport_named(" in source
        assert '"wsproto"' not in source and '"trio-websocket"' not in source


async def test_one_clock_stamps_a_connections_messages_from_the_first_one():
    """The clock is injected when the connection is made (a central system's and a
    charger's, simulated in a sandbox): no record is stamped on another time base."""
    import datetime as dt

    import trio

    from libv4e.transport import open_ocpp, serve_ocpp

    server_time = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    client_time = dt.datetime(2032, 1, 1, tzinfo=dt.UTC)
    seen: list[MessageRecord] = []

    async def on_connect(conn):
        conn.observer = seen.append
        await conn.serve({})

    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_ocpp(
                on_connect, "127.0.0.1", 0, clock=lambda: server_time, task_status=task_status
            )
        )
        client_seen: list[MessageRecord] = []
        async with open_ocpp(
            f"ws://127.0.0.1:{port}",
            "CLOCK1",
            observer=client_seen.append,
            clock=lambda: client_time,
        ) as conn:
            from ocpp.v16 import call

            with pytest.raises(Exception):  # noqa: B017 - NotImplemented: no handlers
                await conn.call(call.Heartbeat(), timeout=5)
        nursery.cancel_scope.cancel()
    assert seen and {r.at for r in seen} == {server_time}
    assert client_seen and {r.at for r in client_seen} == {client_time}


# -- the transaction book changes only through planned changes ---------------------------------

MUTATORS = {"append", "appendleft", "pop", "popleft", "setdefault", "clear", "update", "add"}
# Where the book may change: applying a written change, loading from the store, and the
# ids (taken when a start is planned: an id is never reused, even if its write fails).
BOOK_WRITERS = {"__init__", "apply", "_put", "_forget_finished", "load", "add_ids", "_allocate"}


def book_mutations(tree: ast.Module, cls: str = "TransactionBook") -> list[tuple[str, int]]:
    """(method, line) of each change to ``self``'s state outside the writers."""
    found = []
    (book,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    for method in book.body:
        if not isinstance(method, ast.FunctionDef) or method.name in BOOK_WRITERS:
            continue
        for node in ast.walk(method):
            targets = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            elif isinstance(node, ast.Delete):
                targets = node.targets
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS
            ):
                targets = [node.func.value]
            for target in targets:
                base = target
                while isinstance(base, ast.Subscript | ast.Attribute):
                    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
                        if base.value.id == "self":
                            found.append((method.name, node.lineno))
                        break
                    base = base.value
    return found


def test_the_transaction_book_changes_only_by_applying_a_planned_change():
    """Every event (a start, a stop, a boot, a lost answer, a reconnect, a confirmation)
    returns a Change; only ``apply`` makes it true."""
    source = ROOT / "libv4e" / "csms" / "_txbook.py"
    assert book_mutations(ast.parse(source.read_text())) == []


def test_the_book_mutation_check_finds_a_change_made_while_planning():
    code = """
class TransactionBook:
    def booted(self, cp_id, at):
        for tx_id in self._active:
            self._suspects.setdefault(tx_id, at)
    def confirm(self, tx_id):
        self._suspects.pop(tx_id, None)
    def apply(self, change):
        self._txs[1] = change
"""
    assert book_mutations(ast.parse(code)) == [("booted", 5), ("confirm", 7)]


# -- a façade that does not forward --------------------------------------------------------

CENTRAL = ROOT / "libv4e" / "csms" / "_central.py"
HANDLERS = ROOT / "libv4e" / "csms" / "_handlers.py"
HANDLERS_201 = ROOT / "libv4e" / "csms" / "_handlers201.py"


def forwarders(tree: ast.Module, cls: str) -> list[str]:
    """The methods of ``cls`` whose whole body (after a docstring) hands its own
    parameters, unchanged and in order, to one method of one of its attributes
    (``return await self.part.method(a, b)``): a name that adds nothing but a hop."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for fn in node.body:
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = fn.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if len(body) != 1 or not isinstance(body[0], ast.Return | ast.Expr):
                continue
            value = body[0].value
            if isinstance(value, ast.Await):
                value = value.value
            if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)):
                continue
            target = value.func.value
            if not (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and not target.attr.startswith("_")  # its own state, not a component
            ):
                continue
            params = [a.arg for a in fn.args.args[1:]] + [a.arg for a in fn.args.kwonlyargs]
            passed = [a.id for a in value.args if isinstance(a, ast.Name)] + [
                k.value.id for k in value.keywords if isinstance(k.value, ast.Name)
            ]
            if len(passed) == len(value.args) + len(value.keywords) and passed == params:
                found.append(fn.name)
    return found


def test_the_central_system_forwards_nothing_to_its_components():
    """Callers use the component (``csms.operator.reserve_now``), not a second name for
    it on the façade."""
    assert forwarders(_tree(CENTRAL), "CentralSystem") == []


def test_the_forwarder_check_finds_one():
    tree = ast.parse(
        "class CentralSystem:\n"
        "    async def reserve_now(self, cp_id, request, *, timeout=None):\n"
        "        '''Forwarded.'''\n"
        "        return await self.operator.reserve_now(cp_id, request, timeout=timeout)\n"
        "    def reachable(self, cp_id):\n"
        "        return self.connection(cp_id) is not None\n"
    )
    assert forwarders(tree, "CentralSystem") == ["reserve_now"]


def test_the_handlers_are_handed_their_parts_not_the_central_system():
    """The charger-initiated handlers see only :class:`HandlerParts`: what they use."""
    from libv4e.csms._handlers import ChargerHandlers, HandlerParts

    for path in (HANDLERS, HANDLERS_201):  # the 1.6 and the 2.0.1 answers
        source = path.read_text()
        assert "CentralSystem" not in source and "_central" not in source
    params = ChargerHandlers.__init__.__annotations__
    assert params["parts"] in ("HandlerParts", HandlerParts)
    used = {
        node.attr
        for path in (HANDLERS, HANDLERS_201)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parts"
    } | {
        node.attr
        for path in (HANDLERS, HANDLERS_201)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("csms", "parts")
    }
    fields = {f.name for f in dataclasses.fields(HandlerParts)}
    assert used <= fields
    assert fields - used == set(), f"parts handed over but never used: {fields - used}"
