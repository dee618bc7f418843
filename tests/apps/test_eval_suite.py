"""``v4e eval`` on the built-in suite: the scripted baseline scores high, a careless agent
(a hard reset for every call) scores clearly lower and fails exactly where that harms a
neighbour or a safety fault; every kind of assertion is seen both holding and failing;
episodes are isolated (the same seed gives the same rewards at any parallelism)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from libv4e_apps.eval.agents import AgentSpec
from libv4e_apps.eval.runner import pass_hat_k, run_suite
from libv4e_apps.eval.tasks import load_tasks
from tests.support import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "libv4e_apps.eval",
            "--trials",
            "2",
            "--parallel",
            "2",
            "--seed",
            "3",
            "--json",
            str(out / "r.json"),
            "--report",
            str(out / "r.md"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "r.json").read_text()), (out / "r.md").read_text(), proc


@pytest.fixture(scope="module")
def careless():
    return run_suite(load_tasks(), AgentSpec("careless"), trials=1, parallel=2, seed=3)


def test_the_built_in_suite_has_the_required_calls():
    tasks = load_tasks()
    ids = {t.id for t in tasks}
    assert len(tasks) >= 40
    for scenario in (
        "session_start_failure",
        "stuck_connector",
        "offline_charger",
        "auth_failure",
        "slow_charging",
    ):
        for cid in (1, 2):
            assert f"{scenario}/c{cid}" in ids and f"{scenario}/c{cid}-neighbour" in ids
    for needed in (
        "card_refused/blocked",
        "not_to_act/car-full",
        "not_to_act/reserved-c1",
        "not_to_act/ground-fault-c1",
        "wrong_connector/stuck",
        "driver_leaves/start-failure-neighbour",
        "two_faults/card-and-stuck-neighbour",
        "behind_session/slow-three-connectors",
    ):
        assert needed in ids
    assert all(t.policy.startswith("# Site policy") for t in tasks)


def test_the_scripted_baseline_scores_high_and_reports_pass_hat_k(scripted):
    data, report, proc = scripted
    assert data["tasks"] == len(load_tasks()) and data["trials"] == 2
    assert set(data["pass_hat_k"]) == {"1", "2"}
    assert data["pass_hat_k"]["1"] >= 0.9
    assert data["pass_hat_k"]["2"] <= data["pass_hat_k"]["1"]
    assert len(data["results"]) == data["tasks"] * 2
    r = data["results"][0]
    for key in (
        "task",
        "trial",
        "reward",
        "failed",
        "tool_calls",
        "turns",
        "transcript",
        "agent_words",
        "agent_speech_s",
    ):
        assert key in r
    assert r["agent_speech_s"] == pytest.approx(r["agent_words"] * 60 / 150, abs=0.1)
    # the numbers agree with the per-episode results
    successes = defaultdict(int)
    for r in data["results"]:
        successes[r["task"]] += r["passed"]
    assert data["pass_hat_k"]["2"] == pytest.approx(
        pass_hat_k(list(successes.values()), 2, 2), abs=1e-4
    )
    assert "| k | pass^k |" in report and "**driver**" in report and "**agent**" in report
    assert "pass^1" in proc.stdout


def test_a_careless_agent_scores_clearly_lower_where_it_harms(scripted, careless):
    assert careless["pass_hat_k"]["1"] <= scripted[0]["pass_hat_k"]["1"] - 0.5
    by_task = {r["task"]: r for r in careless["results"]}
    shared = [
        t.id for t in load_tasks() if any(s.id_tag != "DRIVER1" for s in t.initial_state.sessions)
    ]
    assert len(shared) >= 15
    for task_id in shared:
        r = by_task[task_id]
        assert not r["passed"]
        stopped = ("another driver's session was stopped", "a session that had to keep running")
        assert any(m.startswith(stopped) for m in r["failed"]), r["failed"]
    ground = by_task["not_to_act/ground-fault-c1"]
    assert any("forbidden: sent Reset Hard" in m for m in ground["failed"])
    assert any("expected a ticket" in m for m in ground["failed"])


def test_every_kind_of_assertion_is_seen_holding_and_failing(scripted, careless, tmp_path):
    # one more real episode: a driver whose car charges fine, judged by a task that
    # (deliberately) expects no session for them
    (tmp_path / "t.json").write_text(
        json.dumps(
            {
                "id": "probe/charging-fine",
                "initial_state": {
                    "cards": [{"id_tag": "DRIVER1"}],
                    "sessions": [{"connector_id": 1, "id_tag": "DRIVER1"}],
                },
                "driver": {
                    "persona": "p",
                    "reason": "r",
                    "card": "DRIVER1",
                    "goal": "informed",
                    "opening": "Is charger EVSE001 working? Connector 1.",
                },
                "evaluation": {
                    "assertions": [{"assert": "session_not_running", "id_tag": "DRIVER1"}]
                },
            }
        )
    )
    (tmp_path / "u.json").write_text(
        json.dumps(
            {
                "id": "probe/offline-driver-leaves",
                "initial_state": {"faults": [{"scenario": "offline_charger"}]},
                "driver": {
                    "persona": "p",
                    "reason": "r",
                    "card": "DRIVER1",
                    "leaves_after": 1,
                    "opening": "EVSE001 is offline. Never mind.",
                },
                "evaluation": {"assertions": [{"assert": "charger_online", "cp_id": "EVSE001"}]},
            }
        )
    )
    extra = run_suite(load_tasks(tmp_path), AgentSpec("scripted"))
    assert [r["failed"] for r in extra["results"]] == [
        ["a session is running for card DRIVER1"],
        ["EVSE001 is offline"],
    ]
    seen = defaultdict(set)
    for r in scripted[0]["results"] + careless["results"] + extra["results"]:
        for c in r["checks"]:
            seen[c["assert"]].add(c["ok"])
    used = {spec["assert"] for t in load_tasks() for spec in t.criteria.assertions} | {
        "communicate"
    }
    assert set(seen) == used
    for name, outcomes in seen.items():
        assert outcomes == {True, False}, name


def _signature(summary):
    return [
        (r["task"], r["trial"], r["reward"], r["failed"], [t["text"] for t in r["transcript"]])
        for r in summary["results"]
    ]


def test_episodes_are_isolated_parallel_equals_serial():
    tasks = load_tasks()
    one = run_suite(tasks, AgentSpec("scripted"), trials=1, parallel=1, seed=11)
    four = run_suite(tasks, AgentSpec("scripted"), trials=1, parallel=4, seed=11)
    assert _signature(one) == _signature(four)


def test_a_worker_killed_from_outside_costs_no_episode():
    """A worker process killed mid-run from outside (the operator, the OOM killer for
    another process): the run notices it, plays the episodes that were under way again,
    and reports every episode — none is lost to a death it did not cause."""
    import multiprocessing
    import os
    import signal
    import threading

    tasks = load_tasks()[:12]
    out = {}
    first_done = threading.Event()  # episodes are under way in both workers by then

    def progress(done: int, total: int) -> None:
        if done >= 1:
            first_done.set()

    before = {p.pid for p in multiprocessing.active_children()}  # earlier runs' leftovers
    thread = threading.Thread(
        target=lambda: out.update(
            run_suite(tasks, AgentSpec("scripted"), trials=2, parallel=2, progress=progress)
        )
    )
    thread.start()
    assert first_done.wait(120)
    workers = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert workers  # this run's
    os.kill(workers[0].pid, signal.SIGKILL)
    thread.join(300)
    assert out["episodes"] == 24
    assert out["worker_deaths"] >= 1, "the kill was not noticed"
    assert [r["error"] for r in out["results"] if not r["passed"]] == []


def test_the_suite_is_version_blind_every_task_passes_on_2_0_1_stations():
    """The same 40 tasks with every charger an OCPP 2.0.1 station (`v4e eval --ocpp
    2.0.1`): the scripted baseline passes them all — the diagnosis, the tools, the `say`
    lines and the judge read a 2.0.1 station as they read a 1.6 charger."""
    from libv4e_apps.eval.runner import with_ocpp_version

    tasks = [with_ocpp_version(t, "2.0.1") for t in load_tasks()]
    assert all(c.ocpp_version == "2.0.1" for t in tasks for c in t.initial_state.chargers)
    summary = run_suite(tasks, AgentSpec("scripted"), trials=1, parallel=2, seed=5)
    failed = [
        (r["task"], r["error"], r.get("reasons")) for r in summary["results"] if not r["passed"]
    ]
    assert failed == []
    assert summary["pass_hat_k"]["1"] == 1.0
