"""Stand-ins for the agents a team would evaluate, run as a separate process by
tests/test_eval_adapters.py (stdlib only, so they share nothing with libv4e):

- ``model``: a deterministic tool-calling model speaking the OpenAI chat-completions wire
  format. The ``model`` field of the request picks its behaviour: ``follower`` (reads the
  charger from the driver's words, diagnoses, takes the finding's actions, says the
  finding's line), ``badjson`` (tool arguments that are not JSON), ``unknowntool`` (calls a
  tool it was not offered), ``slow`` (answers after 30 s), ``garbage`` (not JSON at all),
  ``driver`` (a driver simulator: reads its screen, then hangs up with DONE).
- ``agent``: a team's own agent service: given a driver turn and the sandbox's REST URL it
  diagnoses through the REST API itself, takes the actions and answers with the line to
  say. ``/crash`` answers 500.

Usage: ``python tests/eval_standins.py model|agent`` — prints the port, serves until killed.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
DIGITS |= {"six": "6", "seven": "7", "eight": "8", "nine": "9"}


def spoken_id(text: str) -> str:
    """EVSE001 from "E V S E zero zero one" (or as written)."""
    m = re.search(
        r"\b((?:[A-Z] ){2,}[A-Z](?: (?:zero|one|two|three|four|five|six|seven|eight|nine))+)", text
    )
    if m:
        return "".join(DIGITS.get(t, t) for t in m.group(1).split())
    m = re.search(r"\b([A-Z]{2,}\d+)\b", text)
    return m.group(1) if m else "EVSE001"


def connector_of(text: str) -> int:
    m = re.search(r"(?:connector|plug|number)\s+(\d|one|two)", text)
    return int(DIGITS.get(m.group(1), m.group(1))) if m else 1


def call(tid: str, name: str, args: Any) -> dict[str, Any]:
    raw = args if isinstance(args, str) else json.dumps(args)
    return {"id": tid, "type": "function", "function": {"name": name, "arguments": raw}}


def answer(content: str | None = None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def follower(messages: list[dict[str, Any]]) -> dict[str, Any]:
    users = [m["content"] for m in messages if m["role"] == "user"]
    first = users[0] if users else ""
    cp_id, cid = spoken_id(first), connector_of(first)
    last = messages[-1]
    if last["role"] == "user":
        if len(users) > 1:
            return answer("Glad to help. Goodbye.")
        return answer(
            None,
            [
                call(
                    "c1",
                    "diagnose_charger",
                    {"cp_id": cp_id, "connector_id": cid, "intent": "leave"},
                )
            ],
        )
    # a tool result: what was it?
    result = json.loads(last["content"])
    if "verdict" in result:
        actions = [
            a for f in result.get("findings", []) for a in f["actions"] if not a.get("fallback")
        ]
        done = [m for m in messages if m["role"] == "tool"]
        if actions and len(done) == 1:
            a = actions[0]
            return answer(None, [call("c2", a["tool"], a["arguments"])])
        return answer(result["say"] + " Please try to unplug the cable now.")
    return answer(
        None,
        [call("c3", "diagnose_charger", {"cp_id": cp_id, "connector_id": cid, "intent": "leave"})],
    )


class Model(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        mode = body.get("model")
        offered = {t["function"]["name"] for t in body.get("tools", [])}
        if mode == "slow":
            time.sleep(30)
        if mode == "garbage":
            self._send(200, b"<html>not json</html>")
            return
        if mode == "badjson":
            out = answer(None, [call("b1", "diagnose_charger", '{"cp_id": "EVSE001",')])
        elif mode == "unknowntool":
            out = answer(None, [call("u1", "clear_scenarios", {})])
        elif mode == "driver":
            tools_done = [m for m in body["messages"] if m["role"] == "tool"]
            if not tools_done:
                out = answer(None, [call("d1", "driver_read_screen", {"connector_id": 1})])
            else:
                screen = json.loads(tools_done[-1]["content"])["screen"]["text"]
                out = answer(f"My screen says {screen}. Thanks. DONE")
        else:
            if "diagnose_charger" not in offered or "clear_scenarios" in offered:
                self._send(400, b'{"error": "wrong tool set offered"}')
                return
            out = follower(body["messages"])
        self._send(200, json.dumps(out).encode())

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def rest(base: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def mcp_tool_names(url: str) -> list[str]:
    """initialize, then tools/list, over MCP's streamable HTTP transport."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    def post(payload: dict[str, Any]) -> tuple[Any, Any]:
        req = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read().decode()
            session = r.headers.get("mcp-session-id")
        if raw.lstrip().startswith("{"):
            return json.loads(raw), session
        data = [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")]
        return (json.loads(data[-1]) if data else None), session

    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "standin", "version": "1"},
    }
    _, session = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
    if session:
        headers["mcp-session-id"] = session
    post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    listed, _ = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    return sorted(t["name"] for t in listed["result"]["tools"])


class AgentService(Model):
    turns: dict[str, int] = {}

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        if self.path == "/crash":
            self._send(500, b"boom")
            return
        base = body["sandbox"]["rest_url"]
        if self.path == "/cheat":  # tries to clear the fault and to act as the driver
            outcomes = []
            for method, path, payload in (
                ("POST", "/demo/clear", {}),
                ("POST", f"/driver/{spoken_id(body['spoken'])}/unplug", {"connector_id": 1}),
                ("GET", "/sandbox/snapshot", None),
            ):
                try:
                    rest(base, method, path, payload)
                    outcomes.append("ok")
                except urllib.error.HTTPError as exc:
                    outcomes.append(str(exc.code))
            self._send(200, json.dumps({"text": " ".join(outcomes), "end": True}).encode())
            return
        if self.path == "/mcp":
            names = mcp_tool_names(body["sandbox"]["mcp_url"])
            text = f"I have {len(names)} tools over MCP: {', '.join(names)}."
            self._send(200, json.dumps({"text": text, "end": True}).encode())
            return
        if body["turn"] > 1:
            self._send(200, json.dumps({"text": "Goodbye.", "end": True}).encode())
            return
        cp_id, cid = spoken_id(body["spoken"]), connector_of(body["spoken"])
        d = rest(base, "POST", f"/chargers/{cp_id}/diagnosis?connector_id={cid}&intent=leave", {})
        for f in d["findings"]:
            for a in f["actions"]:
                if a["tool"] == "unlock_connector":
                    rest(
                        base,
                        "POST",
                        f"/commands/unlock_connector/{cp_id}",
                        {"connector_id": a["arguments"]["connector_id"]},
                    )
        self._send(
            200, json.dumps({"text": d["say"] + " Please try to unplug the cable now."}).encode()
        )


def main() -> None:
    kind = sys.argv[1]
    handler = Model if kind == "model" else AgentService
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
