"""The openai and http agent adapters against real local HTTP servers in another process
(tests/eval_standins.py: a deterministic tool-calling model speaking the chat-completions
wire format, and a team's agent service), including malformed model output: each bad
episode fails with a clear reason and the run goes on."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from libv4e_apps.eval.agents import AgentSpec
from libv4e_apps.eval.episode import run_episode
from libv4e_apps.eval.runner import run_suite
from libv4e_apps.eval.tasks import load_tasks
from tests.support import ROOT

STANDINS = ROOT / "tests" / "eval_standins.py"


def _serve(kind):
    proc = subprocess.Popen(
        [sys.executable, str(STANDINS), kind], stdout=subprocess.PIPE, text=True
    )
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def model():
    proc, url = _serve("model")
    yield f"{url}/v1"
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def service():
    proc, url = _serve("agent")
    yield url
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def stuck():
    return [t for t in load_tasks() if t.id in ("stuck_connector/c1", "stuck_connector/c2")]


def test_a_tool_calling_model_is_offered_only_the_support_tools_and_its_calls_run(model, stuck):
    """The stand-in refuses a request that offers demo tools or lacks diagnose_charger;
    it diagnoses, unlocks the connector it was told about and tells the driver to unplug:
    both episodes pass on the real charger state."""
    summary = run_suite(stuck, AgentSpec("openai", base_url=model, model="follower"))
    for r in summary["results"]:
        assert r["error"] is None, r
        assert r["passed"], r["failed"]
        tools = [c["tool"] for c in r["tool_calls"]]
        assert tools[:2] == ["diagnose_charger", "unlock_connector"], tools
        assert r["tool_calls"][1]["status"] == 200
        assert r["stop"] == "done"
    assert summary["pass_hat_k"] == {"1": 1.0}


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("badjson", "invalid JSON arguments for diagnose_charger"),
        ("unknowntool", "unknown tool 'clear_scenarios'"),
        ("garbage", "not chat-completions JSON"),
        ("slow", "did not answer within 1 s"),
    ],
)
def test_malformed_model_output_fails_the_episode_not_the_run(model, stuck, mode, reason):
    summary = run_suite(stuck, AgentSpec("openai", base_url=model, model=mode, timeout=1.0))
    assert summary["episodes"] == 2 and summary["errors"] == 2
    for r in summary["results"]:
        assert not r["passed"] and r["reward"] == 0.0
        assert reason in r["error"], r["error"]
        assert r["failed"][0].startswith("episode error:")
    assert summary["pass_hat_k"] == {"1": 0.0}
    # the careless call it might have made never happened: no demo tool ran
    assert all(
        c["tool"] != "clear_scenarios" or c["status"] == 400
        for r in summary["results"]
        for c in r["tool_calls"]
    )


def test_an_agent_service_acts_through_the_sandbox_rest_api(service, stuck):
    summary = run_suite(stuck, AgentSpec("http", agent_url=f"{service}/turn"))
    for r in summary["results"]:
        assert r["error"] is None, r
        assert r["passed"], (r["failed"], r["transcript"])
        # it called the REST API itself, through the gate, which recorded its calls
        tools = [(c["tool"], c["status"], c["via"]) for c in r["tool_calls"]]
        assert tools[:2] == [("diagnose_charger", 200, "rest"), ("unlock_connector", 200, "rest")]
        assert "cable_unlocked" in {c["assert"] for c in r["checks"] if c["ok"]}
    assert summary["pass_hat_k"] == {"1": 1.0}


def test_an_agent_service_cannot_reach_what_would_let_it_cheat(service, stuck):
    """Its REST URL is a gate with the driver-support tools' routes only: clearing the
    fault, acting as the driver or reading the sandbox answer 403, and the fault stays."""
    summary = run_suite(stuck[:1], AgentSpec("http", agent_url=f"{service}/cheat"))
    r = summary["results"][0]
    assert r["error"] is None, r
    assert r["transcript"][1]["text"] == "403 403 403"
    assert not r["passed"]  # the cable is still locked: nothing was cleared behind our back
    assert "the cable on EVSE001 connector 1 is locked" in r["failed"]


def test_an_agent_services_body_is_bounded_at_the_gate(service, stuck):
    """The gate reads at most the API's own body bound (256 KiB) before answering 413:
    a service cannot make the runner buffer whatever it sends."""
    summary = run_suite(stuck[:1], AgentSpec("http", agent_url=f"{service}/huge"))
    r = summary["results"][0]
    assert r["error"] is None, r
    assert r["transcript"][1]["text"] == "413"  # answered, not reset: the rest was drained
    assert r["tool_calls"] == []  # nothing reached the sandbox


def test_an_agent_service_gets_the_sandbox_tools_over_mcp_too(service, stuck):
    summary = run_suite(stuck[:1], AgentSpec("http", agent_url=f"{service}/mcp"))
    r = summary["results"][0]
    assert r["error"] is None, r
    said = r["transcript"][1]["text"]
    assert said.startswith("I have 13 tools over MCP: ")
    assert "diagnose_charger" in said and "unlock_connector" in said
    assert "clear_scenarios" not in said and "trigger_scenario" not in said
    assert "driver_unplug" not in said


def test_a_crashing_agent_service_fails_its_episode_and_the_run_goes_on(service, stuck):
    summary = run_suite(stuck, AgentSpec("http", agent_url=f"{service}/crash"))
    assert [r["error"] for r in summary["results"]] == [
        "the agent service answered HTTP 500",
        "the agent service answered HTTP 500",
    ]


def test_an_unreachable_model_is_a_clear_reason(stuck):
    summary = run_suite(stuck[:1], AgentSpec("openai", base_url="http://127.0.0.1:9/v1", model="m"))
    assert "cannot reach the model" in summary["results"][0]["error"]


def test_an_llm_driver_grounds_its_words_in_its_own_tools(model, stuck):
    summary = run_suite(
        stuck[:1],
        AgentSpec("scripted"),
        driver=AgentSpec("openai", base_url=model, model="driver"),
    )
    r = summary["results"][0]
    assert r["error"] is None, r
    said = [t["text"] for t in r["transcript"] if t["who"] == "driver"]
    # the driver read its own screen (a driver tool) and said what it shows, then hung up
    assert any("My screen says" in s for s in said)
    assert "driver_read_screen" in [a["tool"] for a in r["driver_actions"]]
    assert r["stop"] == "done"


def test_the_cli_runs_the_openai_adapter_and_keeps_going(model, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "libv4e_apps.eval",
            "--agent",
            "openai",
            "--base-url",
            model,
            "--model",
            "badjson",
            "--only",
            "stuck_connector/c1",
            "--only",
            "auth_failure/c1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["tasks"] == 2 and data["episodes"] == 2
    assert all("invalid JSON arguments" in r["error"] for r in data["results"])


@pytest.mark.parametrize(
    "flags",
    ["objargs", "noid", "multi", "talk", "quiet", "parts", "nullargs", "objargs+noid+multi+talk"],
)
def test_odd_but_valid_chat_completions_answers_work(model, stuck, flags):
    """Arguments already an object, tool calls without ids, several calls in one message,
    text beside the tool calls (spoken), the last words said beside a tool call then an
    empty answer, content as text parts. The stand-in refuses, as the real API does, a
    history whose tool calls lack ids or string arguments, or whose tool results answer
    no call."""
    summary = run_suite(stuck[:1], AgentSpec("openai", base_url=model, model=f"follower+{flags}"))
    (r,) = summary["results"]
    assert r["error"] is None, r["error"]
    assert r["passed"], r["failed"]
    said = [t["text"] for t in r["transcript"] if t["who"] == "agent"]
    assert "Please try to unplug the cable now." in said[0]
    if "talk" in flags:
        assert said[0].startswith("One moment, let me look.")


def test_a_failing_driver_model_is_named_as_the_driver_not_the_agent(model, stuck):
    """With --driver openai, a driver model's bad answer must not read as the agent's."""
    summary = run_suite(
        stuck[:1],
        AgentSpec("scripted"),
        driver=AgentSpec("openai", base_url=model, model="garbage"),
    )
    (r,) = summary["results"]
    assert r["error"].startswith("the driver simulator failed: "), r["error"]
    assert "not chat-completions JSON" in r["error"]


def test_a_driver_model_sending_arguments_that_are_not_an_object_goes_on(model, stuck):
    summary = run_suite(
        stuck[:1],
        AgentSpec("scripted"),
        driver=AgentSpec("openai", base_url=model, model="driver+listargs"),
    )
    (r,) = summary["results"]
    assert r["error"] is None, r["error"]
    assert "driver_read_screen" in [a["tool"] for a in r["driver_actions"]]


def test_an_agent_service_whose_end_is_not_a_boolean_is_a_clear_reason(service, stuck):
    """ "end": "false" is a string: read as true it would hang up on the driver silently."""
    summary = run_suite(stuck[:1], AgentSpec("http", agent_url=f"{service}/endstr"))
    (r,) = summary["results"]
    assert r["error"] == "the agent service's end is not true or false: 'false'"


def test_a_driver_model_sending_an_argument_called_name_gets_a_400_not_a_crash(model, stuck):
    summary = run_suite(
        stuck[:1],
        AgentSpec("scripted"),
        driver=AgentSpec("openai", base_url=model, model="driver+namearg"),
    )
    (r,) = summary["results"]
    assert r["error"] is None, r["error"]
    (read,) = [a for a in r["driver_actions"] if a["tool"] == "driver_read_screen"]
    assert read["status"] == 400  # unknown argument: name


def test_an_episode_crash_names_the_exception_not_trio_s_group(stuck):
    """A crash inside the episode's nursery arrives wrapped in an ExceptionGroup; the
    reason names what went wrong."""
    task = stuck[0]
    broken = dataclasses.replace(
        task,
        driver=dataclasses.replace(
            task.driver, before_call=({"action": "plug_in", "connector_id": "x"},)
        ),
    )
    r = run_episode(broken, 0, AgentSpec("scripted"))
    assert r["error"].startswith("episode crashed: ValueError("), r["error"]
    assert "ExceptionGroup" not in r["error"]


def test_an_llm_driver_ending_with_done_and_punctuation_ends_the_call(model, stuck):
    """Models dress the token up ("**DONE.**"): still the end of the call, and the token
    is not said to the agent."""
    summary = run_suite(
        stuck[:1],
        AgentSpec("scripted"),
        driver=AgentSpec("openai", base_url=model, model="driver+dot"),
    )
    (r,) = summary["results"]
    assert r["error"] is None, r["error"]
    assert r["stop"] == "done"
    assert "DONE" not in r["transcript"][-1]["text"]


@pytest.mark.parametrize("parallel", [1, 2])
def test_each_episode_gives_the_agent_service_a_session_of_its_own(service, stuck, parallel):
    """A service keeps a conversation per session: two trials (in one process or in two
    workers) must not share one, or their calls would mix."""
    summary = run_suite(
        stuck, AgentSpec("http", agent_url=f"{service}/session"), trials=2, parallel=parallel
    )
    sessions = [r["transcript"][1]["text"] for r in summary["results"]]
    assert len(set(sessions)) == 4, sessions
    assert all(s.startswith(r["task"]) for s, r in zip(sessions, summary["results"], strict=True))
