"""The charger's state machines without sockets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ocpp.v16 import call, datatypes, enums

import libv4e
from libv4e.charger import (
    CONNECTOR_TRANSITIONS,
    Configuration,
    Connector,
    ConnectorEvent,
    LocalAuthorization,
    Meter,
)
from libv4e.charger._model import InvalidTransition, default_configuration, profile_limit_w

S = enums.ChargePointStatus
E = ConnectorEvent


def test_a_normal_session_walks_the_status_machine():
    c = Connector(1)
    seen = [c.status]
    for event in (E.PLUG_IN, E.START, E.SUSPEND_EV, E.RESUME, E.STOP, E.UNPLUG):
        seen.append(c.apply(event))
    assert seen == [
        S.available,
        S.preparing,
        S.charging,
        S.suspended_ev,
        S.charging,
        S.finishing,
        S.available,
    ]


def test_impossible_transitions_are_refused():
    c = Connector(1)
    with pytest.raises(InvalidTransition):
        c.apply(E.STOP)
    c.apply(E.INOPERATIVE)
    assert not c.can(E.PLUG_IN)
    assert c.apply(E.OPERATIVE) is S.available


def test_every_status_can_fault_and_fault_clears_to_available():
    for status in S:
        if status is not S.faulted:
            assert CONNECTOR_TRANSITIONS[status, E.FAULT] is S.faulted
    c = Connector(1, status=S.faulted)
    assert c.apply(E.FAULT_CLEARED) is S.available


def test_status_notification_carries_error_and_info():
    c = Connector(2)
    c.set_error(enums.ChargePointErrorCode.connector_lock_failure, "stuck")
    c.apply(E.FAULT)
    n = c.notification("2024-05-01T12:00:00Z")
    assert n == call.StatusNotification(
        2, "ConnectorLockFailure", "Faulted", "2024-05-01T12:00:00Z", "stuck"
    )


@pytest.fixture
def config():
    return Configuration(default_configuration(2, 30))


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("HeartbeatInterval", "60", "Accepted"),
        ("HeartbeatInterval", "-5", "Rejected"),
        ("HeartbeatInterval", "soon", "Rejected"),
        ("NumberOfConnectors", "3", "Rejected"),
        ("Foo", "1", "NotSupported"),
        ("WebSocketPingInterval", "10", "RebootRequired"),
        ("MeterValuesSampledData", "Energy.Active.Import.Register,SoC", "Accepted"),
        ("MeterValuesSampledData", "Bogus", "Rejected"),
        ("LocalPreAuthorize", "TRUE", "Accepted"),
        ("LocalPreAuthorize", "yes", "Rejected"),
    ],
)
def test_change_configuration_answers(config, key, value, status):
    assert config.change(key, value) == status


def test_get_configuration_with_and_without_keys(config):
    known, unknown = config.get(["HeartbeatInterval", "Nope"])
    assert known == [datatypes.KeyValue("HeartbeatInterval", False, "30")]
    assert unknown == ["Nope"]
    everything, none = config.get(None)
    assert none == []
    core = {
        "HeartbeatInterval",
        "MeterValueSampleInterval",
        "MeterValuesSampledData",
        "NumberOfConnectors",
        "ConnectionTimeOut",
        "AuthorizeRemoteTxRequests",
        "LocalAuthListEnabled",
        "LocalAuthorizeOffline",
        "LocalPreAuthorize",
        "LocalAuthListMaxLength",
        "SendLocalListMaxLength",
        "TransactionMessageAttempts",
        "TransactionMessageRetryInterval",
        "ResetRetries",
        "StopTransactionOnEVSideDisconnect",
        "SupportedFeatureProfiles",
    }
    assert core <= {k.key for k in everything}
    assert next(k for k in everything if k.key == "NumberOfConnectors").readonly


def entry(tag, status="Accepted"):
    return datatypes.AuthorizationData(tag, datatypes.IdTagInfo(status))


def test_local_list_full_and_differential_updates_and_versions():
    auth = LocalAuthorization()
    assert auth.version == 0
    full = call.SendLocalList(1, "Full", [entry("A"), entry("B", "Blocked")])
    assert auth.send_local_list(full, enabled=True) == "Accepted"
    assert auth.version == 1
    diff = call.SendLocalList(2, "Differential", [entry("C"), datatypes.AuthorizationData("A")])
    assert auth.send_local_list(diff, enabled=True) == "Accepted"
    assert set(auth.entries) == {"B", "C"}
    stale = call.SendLocalList(2, "Differential", [entry("D")])
    assert auth.send_local_list(stale, enabled=True) == "VersionMismatch"
    assert auth.send_local_list(stale, enabled=False) == "NotSupported"
    assert (
        auth.send_local_list(call.SendLocalList(0, "Full", [entry("X")]), enabled=True) == "Failed"
    )
    assert auth.version == 2


def test_local_list_wins_over_cache():
    auth = LocalAuthorization()
    auth.remember("A", datatypes.IdTagInfo("Accepted"))
    assert auth.lookup("A").status == "Accepted"
    auth.send_local_list(call.SendLocalList(1, "Full", [entry("A", "Blocked")]), enabled=True)
    assert auth.lookup("A").status == "Blocked"


def test_meter_energy_grows_with_power_times_time():
    meter = Meter(energy_wh=1000, power_w=11000, battery_wh=50_000, soc_percent=10)
    meter.advance(3600 / 2)  # half an hour at 11 kW
    assert meter.energy_wh == pytest.approx(6500)
    assert meter.soc_percent == pytest.approx(21)
    assert meter.current_a == pytest.approx(11000 / (230 * 3))
    meter.power_w = 0
    meter.advance(600)
    assert meter.energy_wh == pytest.approx(6500)


def test_meter_sample_has_the_configured_measurands():
    meter = Meter(energy_wh=1234.4, power_w=7000)
    mv = meter.sample(
        "2024-05-01T12:00:00Z", ["Energy.Active.Import.Register", "Power.Offered"], offered_w=22000
    )
    values = {str(s.measurand): (s.value, str(s.unit)) for s in mv.sampled_value}
    assert values == {
        "Energy.Active.Import.Register": ("1234", "Wh"),
        "Power.Offered": ("22000", "W"),
    }


def test_charging_profile_limit_in_amps_and_watts():
    def profile(unit, limit, purpose="TxDefaultProfile", level=0, start=0):
        return datatypes.ChargingProfile(
            1,
            level,
            purpose,
            "Absolute",
            datatypes.ChargingSchedule(unit, [datatypes.ChargingSchedulePeriod(start, limit)]),
        )

    assert profile_limit_w([], 0, 230, 3) is None
    assert profile_limit_w([profile("A", 16)], 0, 230, 3) == pytest.approx(16 * 230 * 3)
    assert profile_limit_w([profile("W", 5000), profile("W", 9000, level=1)], 0, 230, 3) == 9000
    assert (
        profile_limit_w(
            [profile("W", 9000), profile("W", 4000, "ChargePointMaxProfile")], 0, 230, 3
        )
        == 4000
    )
    assert profile_limit_w([profile("W", 9000, start=60)], 10, 230, 3) is None


# -- every connector status change goes through the machine -------------------------------

_LIBV4E = Path(libv4e.__file__).parent
_MACHINE_USERS = [*sorted((_LIBV4E / "charger").glob("*.py")), _LIBV4E / "scenarios" / "_faults.py"]


def _status_writes(source: str) -> list[tuple[int, str]]:
    """(line, enclosing function) of every write to an attribute called ``status``:
    ``x.status = …`` (also in tuples), ``x.status += …``, ``x.status: T = …`` and
    ``setattr(x, "status", …)``."""
    found: list[tuple[int, str]] = []

    def targets(node: ast.AST) -> list[ast.expr]:
        if isinstance(node, ast.Assign):
            return list(node.targets)
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            return [node.target]
        return []

    def flat(t: ast.expr) -> list[ast.expr]:
        if isinstance(t, ast.Tuple | ast.List):
            return [x for e in t.elts for x in flat(e)]
        return [t]

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        for t in targets(node):
            for leaf in flat(t):
                if isinstance(leaf, ast.Attribute) and leaf.attr == "status":
                    found.append((node.lineno, func))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "status"
        ):
            found.append((node.lineno, func))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(ast.parse(source), "<module>")
    return found


def test_the_status_write_check_finds_direct_assignments():
    source = (
        "def f(c, d):\n"
        "    c.status = 1\n"
        "    c.plugged, d.status = True, 2\n"
        "    setattr(c, 'status', 3)\n"
        "    c.locked = False\n"
    )
    assert _status_writes(source) == [(2, "f"), (3, "f"), (4, "f")]


@pytest.mark.parametrize("path", _MACHINE_USERS, ids=lambda p: p.name)
def test_connector_status_changes_only_through_the_state_machine(path: Path):
    writes = _status_writes(path.read_text())
    if path.name == "_model.py":  # Connector.apply is the machine itself
        assert [func for _, func in writes] == ["apply"]
    else:
        assert writes == [], f"{path.name} sets .status directly: use Connector.apply / _move"


def _libv4e_imports(path: Path) -> set[str]:
    """Every libv4e module ``path`` imports, TYPE_CHECKING and function-level ones too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("libv4e")}


def test_the_charger_layer_and_the_fault_protocol_have_no_import_cycle():
    nodes = {
        f"libv4e.charger.{p.stem}": p
        for p in _MACHINE_USERS
        if p.parent.name == "charger" and p.stem != "__init__"
    }
    nodes["libv4e.scenarios._faults"] = _LIBV4E / "scenarios" / "_faults.py"
    graph = {name: _libv4e_imports(path) & set(nodes) - {name} for name, path in nodes.items()}
    assert "libv4e.charger._model" in graph["libv4e.scenarios._faults"]  # the check sees it

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert [name for name in graph if name in reachable(name)] == []
