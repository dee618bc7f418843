"""The simulated driver: the other half of the call.

:class:`ScriptedDriver` is deterministic for a seed. It opens with its reason for calling,
and after each agent turn does what the agent asked in a small closed vocabulary —
unplug, plug in again, present the card, read the screen, look at the car's app, say which
charger / connector / card, wait — through its own driver tools (the sandbox's
``/driver`` routes), and says what happened. Otherwise it says its next scripted line, or
ends the call: ``done`` when its goal holds on its own device (the car charges, the cable
is out, or it was told what it needed), else ``transfer``. Every statement about the
charger comes from its tools, never from the CSMS.

:class:`LLMDriver` plays the same part with a chat-completions model, grounded in the same
driver tools, ending the call with done / transfer / out_of_scope as in τ²-bench.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from typing import Any

import httpx

from ..csms.driver_tools import DRIVER_TOOLS, call_driver_tool
from .tasks import Task
from .voice import spoken_form

__all__ = ["DriverTurn", "LLMDriver", "ScriptedDriver"]


@dataclasses.dataclass
class DriverTurn:
    """What the driver said (``text`` and its ``spoken`` form), what they did at the
    charger (``actions``), and ``stop`` when they end the call."""

    text: str
    spoken: str
    actions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    stop: str | None = None


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "1": 1, "2": 2, "3": 3, "4": 4}


class DriverTools:
    """The driver's hands: their tools on the sandbox behind ``client``, logged."""

    def __init__(self, client: httpx.AsyncClient, cp_id: str) -> None:
        self.client, self.cp_id = client, cp_id
        self.log: list[dict[str, Any]] = []

    async def call(self, name: str, /, **arguments: Any) -> dict[str, Any]:
        """Run driver tool ``name`` on the driver's charger; the answer is logged."""
        arguments = {"cp_id": self.cp_id, **arguments}
        outcome = await call_driver_tool(self.client, name, arguments)
        self.log.append({"tool": name, "arguments": arguments, "status": outcome["status"]})
        return outcome

    async def screen(self, connector: int) -> str:
        """The screen's text ("" when it is dark)."""
        outcome = await self.call("driver_read_screen", connector_id=connector)
        return str(outcome["result"].get("screen", {}).get("text", "")) if outcome["ok"] else ""

    async def car(self, connector: int) -> dict[str, Any]:
        """The car's app."""
        outcome = await self.call("driver_car_app", connector_id=connector)
        car: dict[str, Any] = outcome["result"].get("car", {}) if outcome["ok"] else {}
        return car


class ScriptedDriver:
    """The scripted driver of ``task``, its choices drawn from ``rng``."""

    def __init__(self, task: Task, rng: random.Random, tools: DriverTools) -> None:
        self.task, self.spec, self.rng, self.tools = task, task.driver, rng, tools
        self.connector = self.spec.connector
        self.lines = list(self.spec.lines)
        self.agent_turns = 0
        self.told_ticket: str | None = None
        self.told_connector = False
        self.heard: list[str] = []

    def _say(
        self, text: str, actions: list[dict[str, Any]] | None = None, stop: str | None = None
    ) -> DriverTurn:
        return DriverTurn(text, spoken_form(text), actions or [], stop)

    async def before_call(self) -> None:
        """What the driver did before calling (tapped the card, say)."""
        for step in self.spec.before_call:
            cid = int(step["connector_id"])
            if step["action"] == "present_card":
                await self.tools.call(
                    "driver_present_card", connector_id=cid, id_tag=self.spec.card
                )
            else:
                await self.tools.call(f"driver_{step['action']}", connector_id=cid)

    def opening(self) -> DriverTurn:
        """The first thing the driver says."""
        text, spoken = self.spec.opening.pick(self.rng)
        return DriverTurn(text, spoken)

    async def reply(self, agent_text: str) -> DriverTurn:
        """The driver's answer to what the agent just said."""
        self.agent_turns += 1
        self.heard.append(agent_text)
        said = agent_text.lower()
        ticket = re.search(r"ticket(?: number)?\s*(?:#|no\.?|number)?\s*(\d+)", said)
        if ticket:
            self.told_ticket = ticket.group(1)
        if self.spec.leaves_after is not None and self.agent_turns >= self.spec.leaves_after:
            return self._say(
                "Sorry, I can't wait any longer. I'm leaving. Bye.", stop="out_of_scope"
            )
        parts: list[str] = []
        acted: list[dict[str, Any]] = []
        cid, card = self.connector, self.spec.card
        asks = _requests(said)
        for ask in asks:
            if ask == "charger":
                parts.append(f"I'm at charger {self.spec.charger}.")
            elif ask == "connector":
                # looking again, the driver reads the right number
                parts.append(f"It's connector {cid}.")
                self.told_connector = True
            elif ask == "card":
                parts.append(f"My card number is {card}.")
            elif ask == "unplug":
                outcome = await self.tools.call("driver_unplug", connector_id=cid)
                acted.append({"action": "unplug", "ok": outcome["ok"]})
                parts.append(
                    "OK, the cable came out."
                    if outcome["ok"]
                    else "I pulled, but the cable is still locked in."
                )
            elif ask == "plug_in":
                outcome = await self.tools.call("driver_plug_in", connector_id=cid)
                acted.append({"action": "plug_in", "ok": outcome["ok"]})
                parts.append(
                    "I plugged it back in." if outcome["ok"] else "It's already plugged in."
                )
            elif ask == "present_card":
                await self.tools.call("driver_present_card", connector_id=cid, id_tag=card)
                acted.append({"action": "present_card"})
                parts.append(f"I tapped my card. {await self._screen_words(cid)}")
            elif ask == "screen":
                parts.append(await self._screen_words(cid))
            elif ask == "car":
                parts.append(await self._car_words(cid))
            elif ask == "wait":
                parts.append("OK, I'll wait.")
        if parts:
            return self._say(" ".join(parts), acted)
        if await self._goal_met():
            return self._say("Great, that's sorted. Thank you, bye.", stop="done")
        if self.lines:
            text, spoken = self.lines.pop(0).pick(self.rng)
            return DriverTurn(text, spoken)
        if "?" in agent_text and not _CLOSING.search(said):
            return self._say("I don't know, sorry. Can you just fix it?")
        if self.spec.goal == "informed":
            return self._say("OK, I understand. Thanks, bye.", stop="done")
        return self._say(
            "It still doesn't work. Can I talk to someone else?", stop=self.spec.gives_up
        )

    async def _screen_words(self, cid: int) -> str:
        text = await self.tools.screen(cid)
        return f"The screen says: {text}." if text else "The screen is blank."

    async def _car_words(self, cid: int) -> str:
        car = await self.tools.car(cid)
        if not car.get("plugged"):
            return "My car app says it's not plugged in."
        if car.get("charging"):
            return f"My car app says it's charging at {car.get('power_kw', 0):g} kilowatts."
        return f"My car app says: {str(car.get('status', 'not charging')).lower()}."

    async def _goal_met(self) -> bool:
        goal, cid = self.spec.goal, self.connector
        if goal == "informed":
            return False  # told: ends when the agent has nothing to ask (see reply)
        if goal == "unplugged":
            car = await self.tools.car(cid)
            if not car.get("plugged"):
                return True
            outcome = await self.tools.call("driver_unplug", connector_id=cid)
            return bool(outcome["ok"])
        car = await self.tools.car(cid)
        return bool(car.get("charging"))


_THING = r"(?:the |your )?(?:cable|plug|connector|car)"
_CABLE = r"(?:the |your )?(?:cable|plug|connector)"
_ASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "charger",
        re.compile(
            r"which (?:charger|station)|(?:charger|station) (?:id|number)|what charger|label"
        ),
    ),
    (
        "connector",
        re.compile(
            r"(?:which|what) (?:connector|plug)|connector number|plug number"
            r"|number (?:is )?(?:printed|above|on the plug)"
        ),
    ),
    (
        "card",
        re.compile(r"card number|number on your (?:charging )?card|read me (?:the|your) card"),
    ),
    (
        "unplug",
        re.compile(
            r"\bunplug(?!ged)|(?:take|taking|pull|pulling) (?:out "
            + _CABLE
            + "|"
            + _CABLE
            + " out|it out)|pull(?:ing)? "
            + _CABLE
            + "|remov(?:e|ing) "
            + _CABLE
            + "|disconnect(?:ing)? "
            + _THING
        ),
    ),
    (
        "plug_in",
        re.compile(
            r"\bplug (?:(?:it|the \w+|your \w+) (?:back )?in(?:to)?|(?:back )?in)\b"
            r"|reconnect " + _THING + r"|re-?plug\b"
        ),
    ),
    (
        "present_card",
        re.compile(
            r"(?:tap(?:ping)?|present(?:ing)?|hold(?:ing)?|scan(?:ning)?|swip(?:e|ing))"
            r" (?:your|the) (?:\w+ )?card"
        ),
    ),
    ("screen", re.compile(r"\b(?:screen|display)s?\b")),
    ("car", re.compile(r"\b(?:car(?:'s)? |charging )?app\b|battery level|state of charge")),
    ("wait", re.compile(r"please wait|hold on|one moment|bear with me")),
)

_CLOSING = re.compile(
    r"\b(?:anything|something) (?:else|more)\b|any other (?:questions?|problems?|issues?)"
)
"""A closing question ("anything else?"): the driver answers it with its goal, not with
"can you just fix it?"."""

_NEGATED = re.compile(
    r"\b(?:don't|do not|doesn't|does not|won't|will not|shouldn't|should not|mustn't"
    r"|must not|can't|cannot|not|never|no need to|without|before you)"
    r"(?:\s+(?:need|needs|have|has|got|try|to|you|yet|ever|even|just|be|able|again|it"
    r"|your|the|a|any|me|read|tell|give|check))*\s*$"
)
"""A negation closing the clause before a request: "you don't need to unplug", "please
try not to unplug it yet", "before you unplug, …" are not requests."""


def _requests(said: str) -> list[str]:
    """What the agent asks the driver to do or tell, in the closed vocabulary, in the order
    they are asked."""
    found = []
    for name, pattern in _ASKS:
        for m in pattern.finditer(said):
            if not _negated(said, m.start()):
                found.append((m.start(), name))
                break
    return [name for _, name in sorted(found)]


def _negated(said: str, at: int) -> bool:
    clause = re.split(r"[.,;:!?]", said[:at])[-1]
    return bool(_NEGATED.search(clause))


DRIVER_SYSTEM = """You are a driver calling EV-charging support on the phone. Persona: {persona}
Why you call: {reason}. You are at charger {charger}, connector {connector}; your card is {card}.
What you know: {known}. What you do not know: {unknown}.
Speak briefly, like a person on the phone. Everything you say about the charger, its screen
or your car must come from your tools (read the screen, the car app) — never invent it.
Do what the agent asks if your tools allow it. When your problem is solved, end the call by
replying exactly DONE; if you want a human, TRANSFER; if the agent talks about something
unrelated to your problem, OUT_OF_SCOPE."""


class LLMDriver(ScriptedDriver):
    """A driver played by a chat-completions model (``model`` behind ``chat``), grounded in
    the driver tools; scripted opening and before-call actions."""

    def __init__(self, task: Task, rng: random.Random, tools: DriverTools, chat: Any) -> None:
        super().__init__(task, rng, tools)
        self.chat = chat
        spec = task.driver
        self.messages: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": DRIVER_SYSTEM.format(
                    persona=spec.persona,
                    reason=spec.reason,
                    charger=spec.charger,
                    connector=spec.connector,
                    card=spec.card,
                    known=", ".join(spec.known) or "nothing more",
                    unknown=", ".join(spec.unknown) or "nothing in particular",
                ),
            }
        ]

    def opening(self) -> DriverTurn:
        turn = super().opening()
        self.messages.append({"role": "assistant", "content": turn.text})
        return turn

    async def reply(self, agent_text: str) -> DriverTurn:
        self.agent_turns += 1
        self.messages.append({"role": "user", "content": agent_text})
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": {k: v for k, v in t.input_schema().items() if k != "required"},
                },
            }
            for t in DRIVER_TOOLS
        ]
        acted: list[dict[str, Any]] = []
        for _ in range(6):
            message = await self.chat(self.messages, tools)
            self.messages.append(message)
            calls = message.get("tool_calls") or []
            if not calls:
                break
            for c in calls:
                name = c["function"]["name"]
                try:
                    args = json.loads(c["function"].get("arguments") or "{}")
                except json.JSONDecodeError:
                    args = {}
                if not isinstance(args, dict):
                    args = {}
                args = {k: v for k, v in args.items() if k != "cp_id"}
                if name == "driver_present_card":
                    args.setdefault("id_tag", self.spec.card)
                args.setdefault("connector_id", self.connector)
                outcome = await self.tools.call(name, **args)
                acted.append({"action": name, "ok": outcome["ok"]})
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": c.get("id", name),
                        "content": json.dumps(outcome["result"]),
                    }
                )
        text = str(message.get("content") or "").strip()
        # the token ends the reply, maybe dressed up: "DONE", "DONE.", "**DONE**"
        end = re.search(r"[\s*_`\"']*\b(DONE|TRANSFER|OUT_OF_SCOPE)\b[\s.!*_`\"']*$", text)
        if end:
            text = text[: end.start()].strip() or "Thanks, bye."
            return self._say(text, acted, end.group(1).lower())
        return self._say(text or "Hello?", acted)
