"""A scripted support agent that uses only the public REST API.

It plays a scenario the way a voice agent would: hears the driver, looks at the charger,
asks for a diagnosis, carries out the recommended actions, and checks that the problem is
gone. Every line it says and every API call it makes is reported through ``say``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import httpx
import trio

DRIVER_TAG = "DRIVER42"


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

    @property
    def ok(self) -> bool:
        """Resolved, or escalated where the scenario demands it."""
        return self.result == self.expected


class AgentError(Exception):
    """The API answered something the agent cannot work with."""


class ScriptedAgent:
    """Plays scenarios against a backend at ``client.base_url`` on charger ``cp_id``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        say: Callable[[Line], None],
        *,
        cp_id: str = "EVSE001",
        recovery_timeout: float = 20.0,
    ) -> None:
        self.client, self.say, self.cp_id = client, say, cp_id
        self.recovery_timeout = recovery_timeout

    # -- API helpers -------------------------------------------------------------------------

    async def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        quiet: bool = False,
        **params: Any,
    ) -> Any:
        """Call the API, report the call and its answer, return the JSON answer."""
        response = await self.client.request(method, path, json=body, params=params or None)
        try:
            data = response.json()
        except ValueError:
            data = {"text": response.text}
        if not quiet:
            shown = f"{method} {path}" + (f" {body}" if body else "")
            self.say(Line("api", f"{shown} → {response.status_code}", data))
        if response.status_code >= 400:
            raise AgentError(f"{method} {path}: {response.status_code} {data}")
        return data

    async def charger(self) -> dict[str, Any]:
        """The charger's state (quietly)."""
        data: dict[str, Any] = await self.api("GET", f"/chargers/{self.cp_id}", quiet=True)
        return data

    async def connector(self, cid: int = 1) -> dict[str, Any]:
        """One connector's state (quietly)."""
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
            await self.api("POST", "/demo/clear", quiet=True)
            self.say(Line("demo", f"starting fault {name} on {self.cp_id}"))
            await self.api("POST", f"/demo/trigger/{name}", {"cp_id": self.cp_id, **(params or {})})
            self.say(Line("driver", driver_says))
            await self.reproduce(name)
            findings = await self.diagnose(outcome)
            if findings:
                outcome.result = await self.remedy(findings[0], outcome)
        except AgentError as exc:
            self.say(Line("agent", f"Something went wrong on my side: {exc}"))
        finally:
            outcome.seconds = time.monotonic() - started
            await self.tidy_up()
        return outcome

    async def reproduce(self, name: str) -> None:
        """What the driver does (or the agent tries first) before the diagnosis."""
        if name in ("session_start_failure", "auth_failure"):
            c = await self.connector()
            self.say(
                Line(
                    "agent",
                    f"I can see connector 1 is {c['status']}. Let me start the "
                    "session for you remotely.",
                )
            )
            await self.api(
                "POST",
                f"/commands/remote_start/{self.cp_id}",
                {"id_tag": DRIVER_TAG, "connector_id": 1},
            )
        elif name == "stuck_connector":
            await self.until(self._lock_failure, 10)
        elif name == "slow_charging":
            await self.until(self._charging, 10)

    async def _lock_failure(self) -> bool:
        return bool((await self.connector())["error_code"] == "ConnectorLockFailure")

    async def _charging(self) -> bool:
        return bool((await self.connector())["status"] == "Charging")

    async def diagnose(self, outcome: Outcome) -> list[dict[str, Any]]:
        """Ask for a diagnosis; say what it found."""
        self.say(Line("agent", "Let me check the charger's diagnostics."))
        data = await self.api(
            "GET", f"/chargers/{self.cp_id}/diagnosis", id_tag=DRIVER_TAG, start_timeout=3
        )
        findings: list[dict[str, Any]] = data["findings"]
        outcome.diagnosed_as = [f["code"] for f in findings]
        if not findings:
            self.say(Line("agent", "I can't see a fault on the charger right now."))
        for f in findings:
            self.say(Line("agent", f["summary"]))
        return findings

    async def remedy(self, finding: dict[str, Any], outcome: Outcome) -> str:
        """Carry out the finding's actions, then verify; returns resolved or escalated."""
        code = finding["code"]
        if code == "slow_charging":
            self.say(
                Line(
                    "agent",
                    "Power at this site is shared between chargers, and this "
                    "one is held back. I'll restart it and start a fresh session; you "
                    "don't need to do anything.",
                )
            )
        for action in finding["actions"]:
            path = action["path"]
            if action["method"] == "GET" or path == "/tickets":
                continue  # looking, and tickets, only when recovery fails
            outcome.actions.append(path.split("/")[2] if path.startswith("/commands/") else path)
            self.say(Line("agent", _ACTION_LINES.get(path.split("/")[2], action["why"])))
            if path.startswith("/commands/reset/"):
                before = (await self.charger())["boot"]["at"]
                await self.api(action["method"], path, action["body"])
                if not await self.until(
                    functools.partial(self._rebooted, before), self.recovery_timeout
                ):
                    return await self.escalate(code, outcome)
                self.say(Line("agent", "The charger restarted and is back online."))
            else:
                await self.api(action["method"], path, action["body"])
        if not finding["actions"] or all(
            a["path"] == "/tickets" or a["method"] == "GET" for a in finding["actions"]
        ):
            if not await self.until(self._back_online, self.recovery_timeout):
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
                "The charger is not recovering remotely. I'm opening a ticket "
                "for our field team; they'll be in touch.",
            )
        )
        outcome.actions.append("ticket")
        await self.api(
            "POST",
            "/tickets",
            {
                "cp_id": self.cp_id,
                "scenario": code,
                "summary": f"{code}: remote remediation did not restore {self.cp_id}",
            },
        )
        return "escalated"

    async def verify(self, code: str) -> bool:
        """Check over the API that the problem is gone."""
        cp = self.cp_id
        trigger = f"/commands/trigger_message/{cp}"
        if code in ("session_start_failure", "slow_charging", "auth_failure"):
            if not await self.until(self._charging, 10):
                return False
            first = (await self.connector())["meter"]

            async def rising() -> bool:
                await self.api(
                    "POST",
                    trigger,
                    {"requested_message": "MeterValues", "connector_id": 1},
                    quiet=True,
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
                    f"connector 1: {(meter['power_w'] or 0) / 1000:.1f} kW, "
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
            await self.api("POST", trigger, {"requested_message": "Heartbeat"})

            async def beating() -> bool:
                state = await self.charger()
                return bool(state["online"] and state["last_heartbeat"] != before)

            return bool(await self.until(beating, 10))
        return False

    async def tidy_up(self) -> None:
        """Stop sessions and clear faults so the next scenario starts clean."""
        try:
            await self.api("POST", "/demo/clear", quiet=True)
            state = await self.charger()
            for tx in state.get("active_transactions", []):
                await self.api(
                    "POST",
                    f"/commands/remote_stop/{self.cp_id}",
                    {"transaction_id": tx["transaction_id"]},
                    quiet=True,
                )
            c = await self.connector()
            if c["error_code"] != "NoError" or c["status"] in ("Faulted", "Finishing"):
                await self.api(
                    "POST",
                    f"/commands/unlock_connector/{self.cp_id}",
                    {"connector_id": 1},
                    quiet=True,
                )
            await self.until(self.ready, 10)
        except (AgentError, httpx.HTTPError):
            pass

    async def ready(self) -> bool:
        """Online, connector 1 Available and nothing charging."""
        state = await self.charger()
        c = await self.connector()
        return bool(
            state["online"] and c["status"] == "Available" and not state["active_transactions"]
        )


_ACTION_LINES = {
    "reset": "I'm restarting the charger now; it takes a few seconds.",
    "unlock_connector": "I'm releasing the cable lock remotely.",
    "remote_start": "I'm starting your session again.",
    "send_local_list": "I'm updating your card on the charger.",
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
