"""A scripted support agent that uses only the agent tools (no LLM).

It plays a scenario the way a voice agent would: hears the driver, asks for a diagnosis,
follows it (``next_action`` while the verdict is inconclusive, the finding's ``actions``
once a fault is found), and checks that the problem is gone. Every tool call goes through
one ``caller``: the REST API by default (:func:`libv4e_apps.csms.tools.call_tool`), or an MCP
session (see ``tests/e2e/test_agent_e2e.py``). Every line it says and every call it makes is
reported through ``say``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio

from ..csms.tools import call_tool

DRIVER_TAG = "DRIVER42"

ToolCaller = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``await caller(tool, arguments)`` → ``{"ok": bool, "status": int, "result": JSON}``."""


@dataclasses.dataclass(frozen=True)
class Line:
    """One line of the conversation: ``who`` is driver, agent, api or demo."""

    who: str
    text: str
    detail: Any = None


@dataclasses.dataclass
class Outcome:
    """How a scenario went."""

    scenario: str
    diagnosed_as: list[str] = dataclasses.field(default_factory=list)
    actions: list[str] = dataclasses.field(default_factory=list)
    result: str = "unresolved"  # resolved | escalated | unresolved
    seconds: float = 0.0
    expected: str = "resolved"
    verdicts: list[str] = dataclasses.field(default_factory=list)
    """Every diagnosis verdict seen, in order."""

    @property
    def ok(self) -> bool:
        """Resolved, or escalated where the scenario demands it."""
        return self.result == self.expected


class AgentError(Exception):
    """A tool answered something the agent cannot work with."""


class ScriptedAgent:
    """Plays scenarios on charger ``cp_id``, connector ``connector_id``, through tools."""

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        say: Callable[[Line], None],
        *,
        cp_id: str = "EVSE001",
        connector_id: int = 1,
        recovery_timeout: float = 20.0,
        caller: ToolCaller | None = None,
    ) -> None:
        if caller is None:
            if client is None:
                raise ValueError("give an HTTP client or a tool caller")
            caller = functools.partial(call_tool, client)
        self.caller, self.say, self.cp_id = caller, say, cp_id
        self.connector_id = connector_id
        self.recovery_timeout = recovery_timeout

    # -- tool helpers ------------------------------------------------------------------------

    async def tool(self, name: str, /, *, quiet: bool = False, **arguments: Any) -> Any:
        """Call a tool, report the call and its answer, return the JSON answer."""
        outcome = await self.caller(name, arguments)
        data = outcome["result"]
        if not quiet:
            shown = {k: v for k, v in arguments.items() if k != "cp_id"}
            self.say(Line("api", f"{name} {shown or ''} → {outcome['status']}".strip(), data))
        if not outcome["ok"]:
            raise AgentError(f"{name}: {outcome['status']} {data}")
        return data

    async def charger(self) -> dict[str, Any]:
        """The charger's state (quietly)."""
        data: dict[str, Any] = await self.tool("get_charger", quiet=True, cp_id=self.cp_id)
        return data

    async def connector(self, cid: int | None = None) -> dict[str, Any]:
        """One connector's state (quietly)."""
        cid = cid or self.connector_id
        state = await self.charger()
        for c in state["connectors"]:
            if c["connector_id"] == cid:
                found: dict[str, Any] = c
                return found
        raise AgentError(f"{self.cp_id} has not reported connector {cid} yet")

    async def until(self, check: Callable[[], Any], timeout: float, interval: float = 0.3) -> Any:
        """Poll ``check`` until it returns something truthy, or None after ``timeout``."""
        with trio.move_on_after(timeout):
            while True:
                try:
                    value = await check()
                except (AgentError, httpx.HTTPError):
                    value = None
                if value:
                    return value
                await trio.sleep(interval)
        return None

    # -- playing -------------------------------------------------------------------------------

    async def play(
        self, name: str, driver_says: str, *, params: dict[str, Any] | None = None
    ) -> Outcome:
        """Play scenario ``name`` from trigger to resolution (or escalation)."""
        outcome = Outcome(name)
        if (params or {}).get("mode") == "dead":
            outcome.expected = "escalated"
        started = time.monotonic()
        try:
            await self.tool("clear_scenarios", quiet=True)
            await self.until(self.ready, 10)
            self.say(Line("demo", f"starting fault {name} on {self.cp_id}"))
            arguments = {"cp_id": self.cp_id, "connector_id": self.connector_id, **(params or {})}
            await self.tool("trigger_scenario", name=name, **arguments)
            self.say(Line("driver", driver_says))
            await self.reproduce(name)
            findings = await self.investigate(outcome)
            if findings:
                outcome.result = await self.remedy(findings[0], outcome)
        except AgentError as exc:
            self.say(Line("agent", f"Something went wrong on my side: {exc}"))
        finally:
            outcome.seconds = time.monotonic() - started
            await self.tidy_up()
        return outcome

    async def reproduce(self, name: str) -> None:
        """What the driver did before calling: a session ended (stuck) or runs (slow)."""
        if name == "stuck_connector":
            await self.until(self._lock_failure, 10)
        elif name == "slow_charging":
            await self.until(self._charging, 10)

    async def _lock_failure(self) -> bool:
        return bool((await self.connector())["error_code"] == "ConnectorLockFailure")

    async def _charging(self) -> bool:
        return bool((await self.connector())["status"] == "Charging")

    async def diagnose(self, *, probe: bool = False) -> dict[str, Any]:
        """One diagnosis with the driver's card and connector as hints."""
        data: dict[str, Any] = await self.tool(
            "diagnose_charger",
            cp_id=self.cp_id,
            id_tag=DRIVER_TAG,
            connector_id=self.connector_id,
            start_timeout=3,
            probe=probe,
        )
        return data

    async def investigate(
        self, outcome: Outcome, *, probe: bool = False, rounds: int = 6
    ) -> list[dict[str, Any]]:
        """Diagnose; while inconclusive, make the one suggested call (or wait) and ask
        again. Returns the findings (empty when healthy or still unclear)."""
        self.say(Line("agent", "Let me check the charger."))
        for _ in range(rounds):
            data = await self.diagnose(probe=probe)
            outcome.verdicts.append(data["verdict"])
            self.say(Line("agent", data["say"]))
            if data["verdict"] == "fault_found":
                findings: list[dict[str, Any]] = data["findings"]
                outcome.diagnosed_as = [f["code"] for f in findings]
                return findings
            if data["verdict"] == "healthy":
                return []
            action = data["next_action"] or {}
            if action.get("tool") in (None, "diagnose_charger"):
                probe = probe or bool((action.get("arguments") or {}).get("probe"))
                await trio.sleep(min(float(data["retry_after_s"] or 1.0), 5.0))
                continue
            arguments = dict(action["arguments"])
            if "id_tag" in action.get("needs", []):
                arguments["id_tag"] = DRIVER_TAG  # asked the driver for their card
            await self.tool(action["tool"], **arguments)
        return []

    async def remedy(self, finding: dict[str, Any], outcome: Outcome) -> str:
        """Carry out the finding's actions, then verify; returns resolved or escalated."""
        code = finding["code"]
        if code == "slow_charging":
            self.say(
                Line(
                    "agent",
                    "Power here is shared between chargers. I'll restart this one and start "
                    "a fresh session for you.",
                )
            )
        acting = [
            a for a in finding["actions"] if a["tool"] not in ("get_charger", "create_ticket")
        ]
        for action in acting:
            tool, arguments = action["tool"], dict(action["arguments"])
            if "id_tag" in action.get("needs", []):
                arguments["id_tag"] = DRIVER_TAG
            outcome.actions.append(tool)
            self.say(Line("agent", action.get("say") or _ACTION_LINES.get(tool, "One moment.")))
            if tool == "reset_charger":
                before = (await self.charger())["boot"]["at"]
                await self.tool(tool, **arguments)
                if not await self.until(
                    functools.partial(self._rebooted, before), self.recovery_timeout
                ):
                    return await self.escalate(code, outcome)
                self.say(Line("agent", "The charger restarted and is back online."))
            else:
                await self.tool(tool, **arguments)
        if not acting and not await self.until(self._back_online, self.recovery_timeout):
            return await self.escalate(code, outcome)
        if await self.verify(code):
            self.say(Line("agent", _RESOLVED_LINES.get(code, "That's fixed.")))
            return "resolved"
        return await self.escalate(code, outcome)

    async def _rebooted(self, before: str | None) -> bool:
        state = await self.charger()
        return bool(state["online"] and state["boot"]["at"] and state["boot"]["at"] != before)

    async def _back_online(self) -> bool:
        return bool((await self.charger())["online"])

    async def escalate(self, code: str, outcome: Outcome) -> str:
        """File a ticket."""
        self.say(
            Line(
                "agent",
                "The charger isn't recovering remotely. I'm opening a ticket for our field "
                "team; they'll be in touch.",
            )
        )
        outcome.actions.append("create_ticket")
        await self.tool(
            "create_ticket",
            cp_id=self.cp_id,
            scenario=code,
            summary=f"{code}: remote remediation did not restore {self.cp_id}",
        )
        return "escalated"

    async def verify(self, code: str) -> bool:
        """Check through the tools that the problem is gone."""
        cp, cid = self.cp_id, self.connector_id
        if code in ("session_start_failure", "slow_charging", "auth_failure"):
            if not await self.until(self._charging, 10):
                return False
            first = (await self.connector())["meter"]

            async def rising() -> bool:
                await self.tool(
                    "trigger_message",
                    quiet=True,
                    cp_id=cp,
                    requested_message="MeterValues",
                    connector_id=cid,
                )
                meter = (await self.connector())["meter"]
                if code == "slow_charging":
                    offered = meter["power_offered_w"] or 0
                    return bool(offered and (meter["power_w"] or 0) >= 0.5 * offered)
                return (meter["energy_wh"] or 0) > (first["energy_wh"] or 0)

            ok = bool(await self.until(rising, 10, interval=1.0))
            meter = (await self.connector())["meter"]
            self.say(
                Line(
                    "api",
                    f"connector {cid}: {(meter['power_w'] or 0) / 1000:.1f} kW, "
                    f"{meter['energy_wh'] or 0:.0f} Wh",
                )
            )
            return ok
        if code == "stuck_connector":

            async def released() -> bool:
                c = await self.connector()
                return bool(c["status"] == "Available" and c["error_code"] == "NoError")

            return bool(await self.until(released, 10))
        if code == "offline_charger":
            before = (await self.charger())["last_heartbeat"]
            await self.tool("trigger_message", cp_id=cp, requested_message="Heartbeat")

            async def beating() -> bool:
                state = await self.charger()
                return bool(state["online"] and state["last_heartbeat"] != before)

            return bool(await self.until(beating, 10))
        return False

    async def tidy_up(self) -> None:
        """Clear the sandbox so the next scenario starts from a known-good state."""
        try:
            await self.tool("clear_scenarios", quiet=True)
            await self.until(self.ready, 10)
        except (AgentError, httpx.HTTPError):
            pass

    async def ready(self) -> bool:
        """Online, the connector Available / NoError and nothing charging."""
        state = await self.charger()
        c = await self.connector()
        return bool(
            state["online"]
            and c["status"] == "Available"
            and c["error_code"] == "NoError"
            and not state["active_transactions"]
        )


_ACTION_LINES = {
    "reset_charger": "I'm restarting the charger now; it takes a few seconds.",
    "unlock_connector": "I'm releasing the cable lock remotely.",
    "remote_start": "I'm starting your session again.",
    "send_local_list": "I'm updating your card on the charger.",
    "change_availability": "I'm switching the plug back on.",
}

_RESOLVED_LINES = {
    "session_start_failure": "Your session has started and energy is flowing. Have a good charge!",
    "stuck_connector": "The connector is unlocked; you can unplug the cable now.",
    "offline_charger": "The charger is back online and reporting normally.",
    "auth_failure": "Your card is accepted now and the session has started.",
    "slow_charging": "You're back at full power.",
}


async def fetch_scenarios(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The scenario catalog from ``GET /demo/scenarios``."""
    response = await client.get("/demo/scenarios")
    response.raise_for_status()
    scenarios: list[dict[str, Any]] = response.json()["scenarios"]
    return scenarios
