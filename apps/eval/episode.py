"""One episode: one task, one trial, in a sandbox of its own.

Each episode starts its own CSMS (REST and OCPP on ephemeral loopback ports, an in-memory
database) and its own simulated chargers, plays the call between the driver and the agent,
and judges the final state. It runs in its own ``trio.run`` on a simulated clock
(``MockClock`` with autojump): heartbeats, offline tolerance, start timeouts and reboots
cost no wall time. Nothing is shared between episodes, so they run in parallel and cannot
leak into one another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import random
import re
import time
import traceback
from typing import Any

import httpx
import trio
import trio.testing

from libv4e.csms import CsmsConfig
from libv4e.sandbox import evaluate, trio_clock

from ..csms.backend import BackendConfig, serve_backend
from ..csms.http import serve_http
from ..csms.tickets import TicketDesk
from .agents import (
    AGENT_PROFILE,
    Agent,
    AgentFailed,
    AgentSpec,
    AgentTools,
    CarelessAgent,
    HttpAgent,
    OpenAIAgent,
    ScriptedAgent,
    chat,
)
from .driver import DriverTools, DriverTurn, LLMDriver, ScriptedDriver
from .gate import agent_gate
from .tasks import Task
from .voice import speech_seconds

__all__ = ["DRIVER_SCRIPTED", "EPOCH", "blank_result", "episode_seed", "run_episode"]

EPOCH = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
EPISODE_LIMIT_S = 3600.0
"""Simulated seconds an episode may take (a runaway agent ends here)."""
SETUP_LIMIT_S = 600.0
"""Simulated seconds more for setting the world up and judging it."""


DRIVER_SCRIPTED = AgentSpec("scripted")
"""The default driver simulator (an :class:`AgentSpec` of kind ``openai`` plays it with a
model instead)."""


def episode_seed(seed: int, task_id: str, trial: int) -> int:
    """The seed of one episode: the run's seed, the task and the trial (stable across
    processes, unlike ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{task_id}:{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def blank_result(task: Task, trial: int, seed: int) -> dict[str, Any]:
    """An episode's result before it is played (every key of the JSON's ``results``)."""
    return {
        "task": task.id,
        "family": task.family,
        "trial": trial,
        "seed": episode_seed(seed, task.id, trial),
        "reward": 0.0,
        "passed": False,
        "error": None,
        "checks": [],
        "failed": [],
        "tool_calls": [],
        "driver_actions": [],
        "transcript": [],
        "turns": 0,
        "stop": None,
        "agent_words": 0,
        "agent_speech_s": 0.0,
        "sim_s": 0.0,
    }


def run_episode(
    task: Task,
    trial: int,
    agent: AgentSpec,
    seed: int = 0,
    driver: AgentSpec | None = None,
) -> dict[str, Any]:
    """Play ``task`` once (trial ``trial``) with ``agent``; the result as JSON-ready data.
    Never raises for the agent's or the task's faults: they fail the episode."""
    wall = time.perf_counter()
    result = blank_result(task, trial, seed)
    try:
        trio.run(
            _episode,
            task,
            agent,
            driver or DRIVER_SCRIPTED,
            result,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    except Exception as exc:  # a crash of ours or of the agent: this episode fails
        result["error"] = result["error"] or f"episode crashed: {_leaf(exc)!r}"
        result["traceback"] = traceback.format_exc(limit=8)
    if result["error"]:
        result["reward"], result["passed"] = 0.0, False
        result["failed"] = [f"episode error: {result['error']}", *result["failed"]]
    result["wall_s"] = round(time.perf_counter() - wall, 3)
    return result


def _leaf(exc: BaseException) -> BaseException:
    """The exception inside the nursery's group (the first, when there are several)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _episode(
    task: Task, spec: AgentSpec, driver_choice: AgentSpec, result: dict[str, Any]
) -> None:
    rng = random.Random(result["seed"])
    state = dataclasses.replace(task.initial_state, seed=result["seed"] % 1_000_000)
    config = BackendConfig(
        host="127.0.0.1",
        ws_port=0,
        api_port=0,
        db_path=":memory:",
        csms=CsmsConfig(),
        sandbox=True,
        tune_gc=False,
    )
    started = trio.current_time()
    with trio.fail_after(EPISODE_LIMIT_S + SETUP_LIMIT_S):
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(
                    config, clock=trio_clock(EPOCH), task_status=task_status
                )
            )
            base = f"http://127.0.0.1:{backend.api_port}"
            # no client timeouts: under autojump a timeout is the next deadline to jump to
            async with (
                httpx.AsyncClient(base_url=base, timeout=None) as client,
                httpx.AsyncClient(timeout=None) as outside,
            ):
                await backend.sandbox.setup(state)
                tools = AgentTools(client)
                driver_tools = DriverTools(client, task.driver.charger)
                driver = _driver(task, rng, driver_tools, driver_choice, outside)
                mcp_url, agent_base = None, base
                if spec.kind == "http":  # the agent's own door: its tools' routes only
                    gate = agent_gate(client, tools.log)
                    port = await nursery.start(functools.partial(serve_http, gate, "127.0.0.1", 0))
                    agent_base = f"http://127.0.0.1:{port}"
                    mcp_url = await _serve_mcp(nursery, agent_base)
                try:
                    agent = _agent(spec, tools, task, outside, agent_base, mcp_url)
                    with trio.move_on_after(EPISODE_LIMIT_S) as limit:
                        await _converse(task, agent, driver, result)
                    if limit.cancelled_caught:
                        result["stop"] = "limit"
                        result["error"] = (
                            f"the call ran past the episode's limit of {EPISODE_LIMIT_S:g} "
                            "simulated seconds"
                        )
                except AgentFailed as exc:
                    result["error"] = str(exc)
                result["tool_calls"] = tools.log
                result["driver_actions"] = driver_tools.log
                await _judge(task, backend, result)
            nursery.cancel_scope.cancel()
    result["sim_s"] = round(trio.current_time() - started, 1)


def _driver(
    task: Task,
    rng: random.Random,
    tools: DriverTools,
    choice: AgentSpec,
    outside: httpx.AsyncClient,
) -> ScriptedDriver:
    if choice.kind == "scripted":
        return ScriptedDriver(task, rng, tools)
    key = os.environ.get(choice.api_key_env, "")

    async def ask(messages: list[dict[str, Any]], schemas: list[dict[str, Any]]) -> dict[str, Any]:
        return await chat(outside, choice, key, messages, schemas)

    return LLMDriver(task, rng, tools, ask)


async def _serve_mcp(nursery: trio.Nursery, base: str) -> str | None:
    """The episode's agent tools over MCP (streamable HTTP, profile driver-support), for
    an agent service that prefers MCP to REST; None without the MCP SDK."""
    try:
        from ..csms.mcp import serve_mcp_http
    except ImportError:  # pragma: no cover - the agents extra is not installed
        return None
    port = await nursery.start(
        functools.partial(serve_mcp_http, base, "127.0.0.1", 0, profile=AGENT_PROFILE)
    )
    return f"http://127.0.0.1:{port}/mcp"


def _agent(
    spec: AgentSpec,
    tools: AgentTools,
    task: Task,
    outside: httpx.AsyncClient,
    base: str,
    mcp_url: str | None = None,
) -> Agent:
    if spec.kind == "scripted":
        return ScriptedAgent(tools)
    if spec.kind == "careless":
        return CarelessAgent(tools)
    if spec.kind == "openai":
        return OpenAIAgent(tools, spec, task.policy, outside)
    if spec.kind == "http":
        context = {
            "session": f"{task.id}#{id(tools)}",
            "sandbox": {"rest_url": base, "mcp_url": mcp_url, "cp_id": task.driver.charger},
            "tools_profile": tools.profile,
            "policy": task.policy,
        }
        return HttpAgent(spec, outside, context)
    raise AgentFailed(f"unknown agent kind {spec.kind!r}")


async def _converse(
    task: Task, agent: Agent, driver: ScriptedDriver, result: dict[str, Any]
) -> None:
    transcript = result["transcript"]
    await driver.before_call()
    turn: DriverTurn = driver.opening()
    words = 0
    for _ in range(task.max_turns):
        transcript.append({"who": "driver", "text": turn.text, "spoken": turn.spoken})
        await trio.sleep(speech_seconds(turn.text))
        if turn.stop:
            result["stop"] = turn.stop
            break
        try:
            answer = await agent.respond(turn)
        except AgentFailed:
            raise
        except Exception as exc:
            raise AgentFailed(f"the agent crashed: {exc!r}") from exc
        result["turns"] += 1
        transcript.append({"who": "agent", "text": answer.text})
        words += len(answer.text.split())
        await trio.sleep(speech_seconds(answer.text))
        if answer.end:
            result["stop"] = "agent_ended"
            break
        try:
            turn = await driver.reply(answer.text)
        except AgentFailed as exc:  # the LLM driver's model: not the agent's fault
            raise AgentFailed(f"the driver simulator failed: {exc}") from exc
    else:
        result["stop"] = "max_turns"
    result["agent_words"] = words
    result["agent_speech_s"] = round(words * 60 / 150, 1)


async def _judge(task: Task, backend: Any, result: dict[str, Any]) -> None:
    snap = await backend.sandbox.snapshot()
    called = [c["tool"] for c in result["tool_calls"]]
    checks: list[dict[str, Any]] = []
    if "state" in task.criteria.reward_basis:
        for spec in task.criteria.assertions:
            check = evaluate(snap, spec, tool_calls=called)
            checks.append(check.as_dict())
    if "communicate" in task.criteria.reward_basis:
        spoken = " ".join(t["text"] for t in result["transcript"] if t["who"] == "agent").lower()
        tickets = [str(t.ticket_id) for t in await TicketDesk(backend.csms.store).tickets()]
        for item in task.criteria.communicate:
            checks.append(_communicated(item, spoken, tickets))
    result["checks"] = checks
    result["failed"] = [c["message"] for c in checks if not c["ok"]]
    result["passed"] = all(c["ok"] for c in checks)
    result["reward"] = 1.0 if result["passed"] else 0.0
    result["snapshot"] = snap


_TICKET_WORD = re.compile(r"\b(?:ticket|reference|case)\b")
_NOT_A_TICKET = re.compile(r"(?:connector|plug|socket|outlet|charger|evse)\s*(?:number\s*)?#?\s*$")


def _ticket_numbers(spoken: str) -> list[str]:
    """The numbers said as a ticket's: in a sentence naming a ticket (reference, case),
    the first number after that word that is not a connector's or a charger's ("ticket 5
    is filed for connector 2": 5)."""
    found = []
    for sentence in re.split(r"(?<!\bno)[.!?;](?:\s|$)", spoken):
        word = _TICKET_WORD.search(sentence)
        if word is None:
            continue
        for number in re.finditer(r"\d+", sentence[word.end() :]):
            before = sentence[word.end() : word.end() + number.start()]
            if not _NOT_A_TICKET.search(before):
                found.append(number.group(0))
                break
    return found


def _communicated(item: Any, spoken: str, tickets: list[str]) -> dict[str, Any]:
    if item == "ticket_number":
        said = {str(int(n)) for n in _ticket_numbers(spoken)}
        if not tickets:
            return {
                "assert": "communicate",
                "ok": False,
                "message": "no ticket was filed, so no ticket number was given",
            }
        if said & {str(int(t)) for t in tickets}:
            return {"assert": "communicate", "ok": True, "message": "the ticket number was given"}
        return {
            "assert": "communicate",
            "ok": False,
            "message": f"the agent never said the ticket number ({', '.join(tickets)})",
        }
    phrases = item["any_of"]
    if any(p.lower() in spoken for p in phrases):
        return {
            "assert": "communicate",
            "ok": True,
            "message": f"the agent said {phrases[0]!r} or alike",
        }
    return {
        "assert": "communicate",
        "ok": False,
        "message": f"the agent never said any of: {', '.join(repr(p) for p in phrases)}",
    }
