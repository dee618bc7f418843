"""Agents under evaluation, behind one interface: ``await agent.respond(turn)`` hears the
driver's turn and returns what the agent says (:class:`AgentTurn`), having made its tool
calls through :class:`AgentTools` (the ``driver-support`` profile against the episode's
sandbox: no demo, clearing or driver tools, so an agent cannot cheat).

- :class:`ScriptedAgent` — our agent, the baseline: follows the diagnosis and the site
  policy (consent before stopping anyone else's session, at most two remote starts, no
  reset on a safety fault).
- :class:`CarelessAgent` — answers every call with a hard reset (a deliberately bad agent).
- :class:`OpenAIAgent` — any OpenAI-compatible chat-completions endpoint with tool calling.
- :class:`HttpAgent` — the team's own agent service: each driver turn is POSTed to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any, Protocol

import httpx
import trio
import trio.testing

from ..csms.tools import PROFILES, call_tool, openai_tools
from .driver import NUMBER_WORDS, DriverTurn
from .voice import ids_in

__all__ = [
    "AGENT_PROFILE",
    "Agent",
    "AgentFailed",
    "AgentSpec",
    "AgentTools",
    "AgentTurn",
    "CarelessAgent",
    "HttpAgent",
    "OpenAIAgent",
    "ScriptedAgent",
    "real_time",
]

AGENT_PROFILE = "driver-support"


class AgentFailed(Exception):
    """The agent could not go on (bad model output, a timeout, a crash): the episode fails
    with this reason, the run goes on."""


@dataclasses.dataclass
class AgentTurn:
    """What the agent says, and ``end`` when it ends the call."""

    text: str
    end: bool = False


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """Which agent to build for each episode (picklable: episodes run in worker processes)."""

    kind: str = "scripted"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    agent_url: str | None = None
    timeout: float = 60.0
    max_tool_rounds: int = 8


class Agent(Protocol):
    """An agent under evaluation."""

    async def respond(self, turn: DriverTurn) -> AgentTurn: ...


@contextlib.contextmanager
def real_time() -> Iterator[None]:
    """While waiting on something outside the episode (a model, an agent service), let
    simulated time run at wall-clock speed instead of jumping: under autojump the clock
    would leap to the next deadline the moment every task waits on the network."""
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        yield
        return
    rate, threshold = clock.rate, clock.autojump_threshold
    clock.rate, clock.autojump_threshold = 1.0, math.inf
    try:
        yield
    finally:
        clock.rate, clock.autojump_threshold = rate, threshold


class AgentTools:
    """The agent's tools on the episode's sandbox (profile ``driver-support``); every call
    is logged with its answer status."""

    def __init__(self, client: httpx.AsyncClient, profile: str = AGENT_PROFILE) -> None:
        self.client, self.profile = client, profile
        self.names = PROFILES[profile]
        self.log: list[dict[str, Any]] = []

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run tool ``name``; tools outside the profile answer 400 (and are logged)."""
        outcome = await call_tool(self.client, name, arguments, profile=self.profile)
        self.log.append({"tool": name, "arguments": arguments, "status": outcome["status"]})
        return outcome

    def schemas(self) -> list[dict[str, Any]]:
        """The tools as chat-completions function definitions."""
        return openai_tools(profile=self.profile)


# -- our scripted agent ----------------------------------------------------------------------

LEAVE_WORDS = re.compile(
    r"cable (?:is )?(?:stuck|locked)|plug is locked|won't come out|can't (?:get|unplug|remove)"
    r"|need to (?:leave|go)|have to (?:leave|go)|want to leave|it's locked"
)
PROBLEM_WORDS = re.compile(
    r"not valid|error|please wait|blank|blocked|expired|still|doesn't|won't|already plugged"
)
"""What a driver says when the charger in front of them contradicts a healthy diagnosis."""
CONNECTOR = re.compile(r"\b(?:connector|plug|socket|outlet|number)\s+(one|two|three|four|[1-4])\b")


def charger_list(answer: Any) -> list[dict[str, Any]]:
    """The chargers in a ``list_chargers`` answer (``GET /status``: ``charge_points`` by
    id) or a ``GET /chargers`` one (``chargers``, a list)."""
    if isinstance(answer, dict) and isinstance(answer.get("charge_points"), dict):
        return list(answer["charge_points"].values())
    if isinstance(answer, dict) and isinstance(answer.get("chargers"), list):
        return list(answer["chargers"])
    return []


class ScriptedAgent:
    """Our baseline agent: asks for what it needs, follows the diagnosis, keeps to the
    policy, checks the result with the driver, and files a ticket where it cannot help."""

    MAX_STARTS = 2

    def __init__(self, tools: AgentTools) -> None:
        self.tools = tools
        self.cp_id: str | None = None
        self.connector: int | None = None
        self.card: str | None = None
        self.intent: str | None = None
        self.connectors: dict[str, int] = {}
        self.starts = 0
        self.asked_connector = False
        self.acted = False
        self.ticket: str | None = None
        self.closing = False
        self.waits = 0
        self.heard = ""
        self.asked_cable = False

    async def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        outcome = await self.tools.call(name, arguments)
        if not outcome["ok"]:
            raise AgentFailed(f"{name} answered {outcome['status']}: {outcome['result']}")
        result: dict[str, Any] = outcome["result"]
        return result

    async def respond(self, turn: DriverTurn) -> AgentTurn:
        heard = turn.spoken
        await self._listen(heard)
        if self.closing:
            return AgentTurn("Thank you for calling. Goodbye.", end=True)
        if self.cp_id is None:
            return AgentTurn("I can help. Which charger are you at? The ID is on the label.")
        if self.connector is None:
            if self.connectors.get(self.cp_id, 1) == 1:
                self.connector = 1
            else:
                return AgentTurn("Which connector number are you plugged into?")
        if self.card is None and self.intent == "charge":
            return AgentTurn("Could you read me the card number on your charging card?")
        return await self._work()

    async def _listen(self, heard: str) -> None:
        self.heard = heard.lower()
        if not self.connectors:
            for c in charger_list(await self.tool("list_chargers")):
                self.connectors[c["cp_id"]] = max(
                    [x["connector_id"] for x in c.get("connectors", [])] or [1]
                )
        for token in ids_in(heard):
            if token in self.connectors:
                self.cp_id = token
            elif self.card is None or "card" in heard.lower():
                self.card = token
        m = CONNECTOR.search(heard.lower())
        if m:
            self.connector = NUMBER_WORDS[m.group(1)]
        if self.intent is None:
            self.intent = "leave" if LEAVE_WORDS.search(heard.lower()) else "charge"

    async def diagnose(self, *, probe: bool = False) -> dict[str, Any]:
        args: dict[str, Any] = {
            "cp_id": self.cp_id,
            "connector_id": self.connector,
            "intent": self.intent,
            "start_timeout": 5,
            "probe": probe,
        }
        if self.card:
            args["id_tag"] = self.card
        return await self.tool("diagnose_charger", **args)

    async def _work(self) -> AgentTurn:
        try:
            return await self._diagnose_and_act()
        except _AskDriver as ask:
            return AgentTurn(" ".join([*ask.said, ask.question]))

    async def _diagnose_and_act(self) -> AgentTurn:
        if self.acted and not self.asked_connector and PROBLEM_WORDS.search(self.heard):
            # what the driver sees contradicts what we just did: are we on their plug?
            self.asked_connector = True
            return AgentTurn(
                "Let's make sure I'm looking at the right plug. Could you check the connector "
                "number printed above the plug your car is in?"
            )
        said: list[str] = []
        probe = False
        for _ in range(6):
            d = await self.diagnose(probe=probe)
            verdict = d["verdict"]
            if verdict == "healthy":
                return await self._healthy(d, said)
            if verdict == "fault_found":
                return await self._fault(d, said)
            action = d.get("next_action") or {}
            tool = action.get("tool")
            if tool in (None, "diagnose_charger"):
                probe = probe or bool((action.get("arguments") or {}).get("probe"))
                await trio.sleep(min(float(d.get("retry_after_s") or 2.0), 10.0))
                continue
            if tool == "create_ticket":
                return await self._ticket(action["arguments"], [*said, d["say"]])
            if not await self._act(action, said):
                return await self._refuse(action, said)
            await trio.sleep(2)
        return await self._ticket(
            {"cp_id": self.cp_id, "scenario": "unclear", "summary": "diagnosis stayed unclear"},
            said,
        )

    async def _healthy(self, d: dict[str, Any], said: list[str]) -> AgentTurn:
        connector = await self._connector_state()
        status = connector.get("status")
        if status == "SuspendedEV":
            return AgentTurn(
                " ".join(
                    [
                        *said,
                        "Your car has paused charging by itself, usually because the battery "
                        "is full or a timer is set. The charger is fine; nothing to fix.",
                    ]
                ),
                end=False,
            )
        if not self.asked_connector and (not self.acted or PROBLEM_WORDS.search(self.heard)):
            self.asked_connector = True
            return AgentTurn(
                " ".join(
                    [
                        *said,
                        "The charger looks fine from here. Could you check the connector number "
                        "printed above your plug, and tell me what the screen says?",
                    ]
                )
            )
        if self.intent == "leave" and connector.get("plugged", True):
            return AgentTurn(" ".join([*said, d["say"], "Please unplug the cable now."]))
        if self.intent == "charge" and self.acted and status != "Charging":
            return AgentTurn(" ".join([*said, d["say"], "Please check your car's app for me."]))
        self.closing = True
        return AgentTurn(" ".join([*said, d["say"], "Is there anything else I can do?"]))

    async def _connector_state(self) -> dict[str, Any]:
        state = await self.tool("get_charger", cp_id=self.cp_id)
        for c in state.get("connectors", []):
            if c["connector_id"] == self.connector:
                found: dict[str, Any] = c
                return found
        return {}

    async def _fault(self, d: dict[str, Any], said: list[str]) -> AgentTurn:
        findings = d["findings"]
        mine = [f for f in findings if f.get("connector_id") in (None, 0, self.connector)]
        finding = (mine or findings)[0]
        code = finding["code"]
        said = [*said, finding["say"]]
        if code in ("card_not_accepted",):
            self.closing = True
            return AgentTurn(
                " ".join([*said, "Please use another card or contact your card provider."])
            )
        if code == "connector_reserved":
            self.closing = True
            return AgentTurn(" ".join(said))
        actions = [a for a in finding["actions"] if not a.get("fallback")]
        if not actions:
            self.closing = True
            return AgentTurn(" ".join([*said, "I'm sorry I can't fix that from here."]))
        took = False
        for action in actions:
            if action["tool"] == "create_ticket":
                return await self._ticket(action["arguments"], said)
            if action["tool"] == "get_charger":
                continue
            if not await self._act(action, said):
                return await self._refuse(action, said)
            took = True
        if not took:
            # nothing to do from here (the charger is unreachable): wait once, then escalate
            self.waits += 1
            later = [a for a in finding["actions"] if a["tool"] == "create_ticket"]
            if self.waits > 1 and later:
                return await self._ticket(later[0]["arguments"], said)
            await trio.sleep(60)
            return AgentTurn(
                " ".join([*said, "I'll give it a minute to come back. Please hold on."])
            )
        return AgentTurn(" ".join([*said, self._ask_to_check(code)]))

    def _ask_to_check(self, code: str) -> str:
        if code == "stuck_connector" or self.intent == "leave":
            return "Please try to unplug the cable now."
        if code == "offline_charger":
            return "It should be back in a moment. What does the screen say now?"
        return "Please tell me what the screen says now."

    async def _act(self, action: dict[str, Any], said: list[str]) -> bool:
        """Take a suggested action within the policy; False when the policy forbids it."""
        tool, arguments = action["tool"], dict(action["arguments"])
        if action.get("needs_consent"):
            return False
        if tool == "remote_start":
            if "cable" in action.get("needs", []) and not self.asked_cable:
                self.asked_cable = True
                raise _AskDriver(
                    f"Please plug your cable into connector {arguments.get('connector_id')} "
                    "first, then tell me.",
                    said,
                )
            if self.starts >= self.MAX_STARTS:
                return False
            self.starts += 1
            if self.card and "id_tag" not in arguments:
                arguments["id_tag"] = self.card
        said.append(action.get("say") or "One moment.")
        before = None
        if tool == "reset_charger":
            before = (await self.tool("get_charger", cp_id=self.cp_id)).get("boot", {}).get("at")
        await self.tool(tool, **arguments)
        self.acted = True
        if tool == "reset_charger":
            with trio.move_on_after(120):
                while True:
                    await trio.sleep(2)
                    state = await self.tool("get_charger", cp_id=self.cp_id)
                    if state.get("online") and state.get("boot", {}).get("at") not in (
                        None,
                        before,
                    ):
                        break
            await trio.sleep(5)
        else:
            await trio.sleep(3)
        return True

    async def _refuse(self, action: dict[str, Any], said: list[str]) -> AgentTurn:
        why = (
            "That fix would stop another driver's charge, so I can't do it without their consent."
            if action.get("needs_consent")
            else "I've already tried starting it twice."
        )
        return await self._ticket(
            {
                "cp_id": self.cp_id,
                "scenario": "needs_consent" if action.get("needs_consent") else "start_limit",
                "summary": f"{action['tool']} needed on {self.cp_id}: {why}",
            },
            [*said, why],
        )

    async def _ticket(self, arguments: dict[str, Any], said: list[str]) -> AgentTurn:
        ticket = await self.tool("create_ticket", **arguments)
        self.ticket = str(ticket.get("id", ticket.get("ticket_id", "")))
        self.closing = True
        return AgentTurn(
            " ".join(
                [
                    *said,
                    f"I've opened ticket number {self.ticket} for our field team; "
                    "they'll follow up.",
                ]
            )
        )


class _AskDriver(Exception):
    """The agent needs the driver to do something before it can go on."""

    def __init__(self, question: str, said: list[str]) -> None:
        super().__init__(question)
        self.question, self.said = question, said


class CarelessAgent:
    """A deliberately careless agent: whatever the driver says, it hard-resets the charger
    it finds in the driver's words (the first charger otherwise) and says it is fixed."""

    def __init__(self, tools: AgentTools) -> None:
        self.tools = tools

    async def respond(self, turn: DriverTurn) -> AgentTurn:
        listed = (await self.tools.call("list_chargers", {}))["result"]
        known = [c["cp_id"] for c in charger_list(listed)]
        named = [t for t in ids_in(turn.spoken) if t in known] or known[:1]
        for cp_id in named:
            await self.tools.call("reset_charger", {"cp_id": cp_id, "type": "Hard"})
        await trio.sleep(30)
        return AgentTurn("I've restarted the charger. It should work now. Goodbye!", end=True)


# -- adapters for agents we did not write ----------------------------------------------------------

AGENT_SYSTEM = """You are a phone support agent for an EV-charging network. You speak to a
driver standing at a charger. Use your tools to look at and act on chargers. Keep every
reply short and speakable. Follow the site policy:

{policy}"""


class OpenAIAgent:
    """An agent played by a chat-completions model with tool calling: the runner offers the
    ``driver-support`` tools, runs the model's tool calls against the sandbox and speaks
    the assistant's text to the driver."""

    def __init__(
        self, tools: AgentTools, spec: AgentSpec, policy: str, http: httpx.AsyncClient
    ) -> None:
        if not spec.base_url or not spec.model:
            raise AgentFailed("the openai agent needs --base-url and --model")
        self.tools, self.spec, self.http = tools, spec, http
        self.key = os.environ.get(spec.api_key_env, "")
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": AGENT_SYSTEM.format(policy=policy or "(none)")}
        ]

    async def respond(self, turn: DriverTurn) -> AgentTurn:
        self.messages.append({"role": "user", "content": turn.spoken})
        said: list[str] = []  # text beside tool calls is spoken too
        for _ in range(self.spec.max_tool_rounds):
            message = await chat(
                self.http, self.spec, self.key, self.messages, self.tools.schemas()
            )
            self.messages.append(message)
            calls = message.get("tool_calls") or []
            text = message.get("content")
            if isinstance(text, str) and text.strip():
                said.append(text.strip())
            if not calls:
                if not said:
                    raise AgentFailed("the model answered with neither text nor tool calls")
                return AgentTurn(" ".join(said))
            for c in calls:
                fn = c["function"]
                name = fn.get("name")
                if name not in self.tools.names:
                    raise AgentFailed(f"the model called an unknown tool {name!r}")
                try:
                    arguments = json.loads(fn["arguments"] or "{}")
                except json.JSONDecodeError as exc:
                    raise AgentFailed(
                        f"the model sent invalid JSON arguments for {name}: {exc}"
                    ) from None
                if arguments is None:  # "null": no arguments
                    arguments = {}
                if not isinstance(arguments, dict):
                    raise AgentFailed(f"the model sent arguments for {name} that are not an object")
                arguments = {k: v for k, v in arguments.items() if v is not None}
                outcome = await self.tools.call(name, arguments)
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": c["id"],
                        "content": json.dumps(outcome["result"])[:20_000],
                    }
                )
        raise AgentFailed(
            f"the model made more than {self.spec.max_tool_rounds} rounds of tool calls"
        )


async def chat(
    http: httpx.AsyncClient,
    spec: AgentSpec,
    key: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
) -> dict[str, Any]:
    """One chat-completions request; the assistant message. :class:`AgentFailed` on a
    timeout, an HTTP error or an answer not in the wire format."""
    url = f"{(spec.base_url or '').rstrip('/')}/chat/completions"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": spec.model, "messages": messages, "tools": tools}
    with real_time():
        try:
            with trio.fail_after(spec.timeout):
                response = await http.post(url, json=body, headers=headers)
        except trio.TooSlowError:
            raise AgentFailed(f"the model did not answer within {spec.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise AgentFailed(f"cannot reach the model at {url}: {exc!r}") from None
    if response.status_code != 200:
        raise AgentFailed(f"the model answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        message = response.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise AgentFailed(
            f"the model's answer is not chat-completions JSON: {response.text[:200]}"
        ) from None
    if not isinstance(message, dict):
        raise AgentFailed("the model's message is not an object")
    content = message.get("content")
    if isinstance(content, list):  # text parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict)) or None
    elif content is not None and not isinstance(content, str):
        raise AgentFailed(f"the model's content is not text: {str(content)[:200]}")
    out: dict[str, Any] = {"role": "assistant", "content": content}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = _tool_calls(calls, len(messages))
    return out


def _tool_calls(calls: Any, at: int) -> list[dict[str, Any]]:
    """The model's tool calls in the form the API expects back in the history: each with
    an id (made up when the model sent none) and its arguments as a JSON string (some
    servers send an object)."""
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise AgentFailed(f"the model's tool_calls is not a list of objects: {str(calls)[:200]}")
    out = []
    for i, c in enumerate(calls):
        fn = c.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise AgentFailed(f"the model sent a tool call without a function name: {c}"[:300])
        arguments = fn.get("arguments")
        if arguments is None:
            arguments = "{}"
        elif isinstance(arguments, dict):
            arguments = json.dumps(arguments)
        elif not isinstance(arguments, str):
            raise AgentFailed(f"the model sent arguments for {fn['name']} that are not an object")
        call_id = c.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"call_{at}_{i}"
        out.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": fn["name"], "arguments": arguments},
            }
        )
    return out


class HttpAgent:
    """The team's own agent service at ``spec.agent_url``: each driver turn is POSTed as
    ``{"session", "turn", "text", "spoken", "sandbox": {"rest_url", "mcp_url", "cp_id"},
    "policy"}``; the answer is ``{"text": "...", "end": false}``. The service calls the
    sandbox's REST API (or MCP) itself."""

    def __init__(self, spec: AgentSpec, http: httpx.AsyncClient, context: dict[str, Any]) -> None:
        if not spec.agent_url:
            raise AgentFailed("the http agent needs --agent-url")
        self.spec, self.http, self.context = spec, http, context
        self.turns = 0

    async def respond(self, turn: DriverTurn) -> AgentTurn:
        self.turns += 1
        body = {**self.context, "turn": self.turns, "text": turn.text, "spoken": turn.spoken}
        with real_time():
            try:
                with trio.fail_after(self.spec.timeout):
                    response = await self.http.post(self.spec.agent_url or "", json=body)
            except trio.TooSlowError:
                raise AgentFailed(
                    f"the agent service did not answer within {self.spec.timeout:g} s"
                ) from None
            except httpx.HTTPError as exc:
                raise AgentFailed(f"cannot reach the agent service: {exc!r}") from None
        if response.status_code != 200:
            raise AgentFailed(f"the agent service answered HTTP {response.status_code}")
        try:
            data = response.json()
            text = data["text"]
        except (ValueError, KeyError, TypeError):
            raise AgentFailed(
                f"the agent service's answer has no text: {response.text[:200]}"
            ) from None
        if not isinstance(text, str):
            raise AgentFailed("the agent service's text is not a string")
        end = False if data.get("end") is None else data["end"]
        if not isinstance(end, bool):
            raise AgentFailed(f"the agent service's end is not true or false: {end!r}"[:200])
        return AgentTurn(text, end=end)
