"""The runner's own faults: a worker process that dies takes only its episode with it;
options that cannot work are refused before the run, not after it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from libv4e_apps.eval.agents import AgentSpec
from libv4e_apps.eval.runner import markdown_report, run_suite
from libv4e_apps.eval.tasks import load_tasks
from tests.support import ROOT


class _KillsItsWorker:
    """Unpickled in the worker process, it ends that process on the spot (as an
    out-of-memory kill or a crash in native code would)."""

    def __reduce__(self):
        return (os._exit, (3,))


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_episode_and_the_rest_of_the_run_is_played():
    """The episodes under way in a worker that dies fail with the reason; the episodes
    not yet started are played in a fresh pool, not lost with it."""
    good = [t for t in load_tasks() if t.id in ("stuck_connector/c1", "stuck_connector/c2")]
    bomb = dataclasses.replace(
        good[0], id="stuck_connector/bomb", raw_state={"x": _KillsItsWorker()}
    )
    summary = run_suite([bomb, *good], AgentSpec("scripted"), trials=2, parallel=2)
    assert summary["episodes"] == 6
    by_task: dict[str, list] = {}
    for r in summary["results"]:
        by_task.setdefault(r["task"], []).append(r)
    for crashed in by_task["stuck_connector/bomb"]:
        assert not crashed["passed"] and "worker process died" in crashed["error"]
        # the same keys as any episode's result, so a reader of --json needs no special case
        assert set(crashed) == set(by_task["stuck_connector/c1"][0])
    played = by_task["stuck_connector/c1"] + by_task["stuck_connector/c2"]
    assert all(r["passed"] for r in played), [r["error"] for r in played]
    assert summary["errors"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-pass", "90"], "--min-pass must be between 0 and 1 (pass^1)"),
        (["--min-pass", "-0.5"], "--min-pass must be between 0 and 1 (pass^1)"),
        (["--timeout", "0"], "--timeout must be more than 0 seconds"),
        (
            ["--agent", "openai", "--base-url", "localhost:11434/v1", "--model", "m"],
            "--base-url: not an http(s) URL: 'localhost:11434/v1'",
        ),
        (
            ["--agent", "http", "--agent-url", "http://[::1"],
            "--agent-url: not an http(s) URL: 'http://[::1'",
        ),
        (["--json", "/nonexistent-dir/r.json"], "--json: no directory /nonexistent-dir"),
        (["--report", "/nonexistent-dir/r.md"], "--report: no directory /nonexistent-dir"),
        (["--json", "/tmp"], "--json: /tmp is a directory"),
        (
            ["--only", "stuck_connector/c1", "--only", "stuck_conector/*"],
            "--only 'stuck_conector/*' matches no task",
        ),
    ],
)
def test_options_that_cannot_work_are_refused_before_the_run(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "libv4e_apps.eval", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr[-1000:])
    assert proc.stderr.strip().splitlines() == [f"v4e eval: {message}"]
    assert "episodes" not in proc.stderr  # refused before any episode ran


def test_a_multi_line_answer_stays_inside_its_transcript_quote():
    """A model's answer with newlines (a list, a heading) must not break the report."""
    result = {
        "task": "t/1",
        "trial": 0,
        "passed": False,
        "reward": 0.0,
        "turns": 1,
        "stop": "done",
        "agent_words": 9,
        "agent_speech_s": 3.6,
        "failed": ["episode error: the model answered HTTP 502: <html>\n<h1>Bad gateway</h1>"],
        "tool_calls": [],
        "transcript": [
            {"who": "driver", "text": "Help."},
            {"who": "agent", "text": "Steps:\n\n# Unplug\n- then plug in\nDone."},
        ],
    }
    summary = {
        "agent": "openai",
        "tasks": 1,
        "trials": 1,
        "seed": 0,
        "episodes": 1,
        "errors": 0,
        "wall_s": 0.1,
        "pass_hat_k": {"1": 0.0},
        "families": {},
        "results": [result],
    }
    report = markdown_report(summary)
    quoted = report.split("Transcript:\n\n")[1].strip().splitlines()
    assert quoted[0] == "> **driver**: Help.  "
    assert all(line.startswith(">") for line in quoted), quoted
    assert "# Unplug" in report and "\n# Unplug" not in report
    assert "\n<h1>" not in report  # a failure stays on its list item's line


@pytest.mark.slow
def test_the_printed_failures_say_how_many_were_left_out():
    proc = subprocess.run(
        [sys.executable, "-m", "libv4e_apps.eval", "--agent", "careless", "--parallel", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("  FAIL ") for line in lines) == 20
    assert lines[-1] == "  … and 18 more failing episodes (--json or --report lists them all)"


@pytest.mark.parametrize(
    ("spoken", "tickets", "ok"),
    [
        ("connector 1 is unlocked. i've passed this on to the team.", ["1"], False),
        ("it charges at 2 kw on connector 1.", ["2"], False),
        ("i've opened ticket number 3 for our field team.", ["3"], True),
        ("your ticket is #7.", ["7"], True),
        ("the reference number for your ticket is 0042.", ["42"], True),
        ("ticket 5 is filed for connector 2.", ["2"], False),
        ("your ticket no. 12 is open.", ["12"], True),
    ],
)
def test_the_ticket_number_counts_only_when_said_as_the_ticket_s(spoken, tickets, ok):
    """Ticket ids are small numbers: "connector 1" is not the number of ticket 1."""
    from libv4e_apps.eval.episode import _communicated

    assert _communicated("ticket_number", spoken, tickets)["ok"] is ok


def test_a_runaway_call_is_cut_at_the_limit_with_what_it_did(monkeypatch):
    """The episode's simulated-time limit ends the call with a reason in words, keeping
    the tool calls and the transcript so far (what the runaway agent was doing)."""
    from libv4e_apps.eval import episode

    monkeypatch.setattr(episode, "EPISODE_LIMIT_S", 30.0)
    task = next(t for t in load_tasks() if t.id == "stuck_connector/c1")
    r = episode.run_episode(task, 0, AgentSpec("scripted"))
    assert r["error"] == "the call ran past the episode's limit of 30 simulated seconds"
    assert r["tool_calls"] and r["transcript"]
    assert not r["passed"]
