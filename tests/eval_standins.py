"""Stand-ins for the agents a team would evaluate, run as a separate process by
tests/apps/test_eval_adapters.py (stdlib only, so they share nothing with libv4e):

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


def strict_problem(messages: list[dict[str, Any]]) -> str | None:
    """What the real API would refuse in a request's history: a tool call without an id or
    with arguments that are not a string, a tool result answering no call."""
    open_ids: set[str] = set()
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if m.get("tool_call_id") not in open_ids:
                return f"messages[{i}]: tool_call_id {m.get('tool_call_id')!r} answers no call"
            open_ids.discard(m["tool_call_id"])
            continue
        if open_ids:
            return f"messages[{i}]: tool calls {sorted(open_ids)} have no tool message"
        for c in m.get("tool_calls") or []:
            if not isinstance(c.get("id"), str) or not c["id"]:
                return f"messages[{i}]: a tool call has no id"
            if not isinstance(c.get("function", {}).get("arguments"), str):
                return f"messages[{i}]: function.arguments must be a string"
            open_ids.add(c["id"])
    return None


def follower(messages: list[dict[str, Any]], multi: bool = False) -> dict[str, Any]:
    users = [m["content"] for m in messages if m["role"] == "user"]
    first = users[0] if users else ""
    cp_id, cid = spoken_id(first), connector_of(first)
    last = messages[-1]
    diagnose = {"cp_id": cp_id, "connector_id": cid, "intent": "leave"}
    if last["role"] == "user":
        if len(users) > 1:
            return answer("Glad to help. Goodbye.")
        calls = [call("c1", "diagnose_charger", diagnose)]
        if multi:  # two calls in one message
            calls.append(call("c1b", "get_charger", {"cp_id": cp_id}))
        return answer(None, calls)
    # the tool results since the model's last message: was there a diagnosis?
    tail = []
    for m in reversed(messages):
        if m["role"] != "tool":
            break
        tail.insert(0, json.loads(m["content"]))
    result = next((r for r in reversed(tail) if isinstance(r, dict) and "verdict" in r), None)
    if result is not None:
        actions = [
            a for f in result.get("findings", []) for a in f["actions"] if not a.get("fallback")
        ]
        called = [c["function"]["name"] for m in messages for c in m.get("tool_calls") or []]
        if actions and set(called) <= {"diagnose_charger", "get_charger", "list_chargers"}:
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
            time.sleep(30)  # wall: a slow model stand-in, in an HTTP server thread
        if mode == "garbage":
            self._send(200, b"<html>not json</html>")
            return
        if mode == "badjson":
            out = answer(None, [call("b1", "diagnose_charger", '{"cp_id": "EVSE001",')])
        elif mode == "unknowntool":
            out = answer(None, [call("u1", "clear_scenarios", {})])
        elif mode in ("driver", "driver+listargs", "driver+namearg", "driver+dot"):
            tools_done = [m for m in body["messages"] if m["role"] == "tool"]
            if not tools_done:
                args: Any = {"connector_id": 1}
                if mode == "driver+listargs":
                    args = [1]
                elif mode == "driver+namearg":  # an argument called "name"
                    args = {"connector_id": 1, "name": "x"}
                out = answer(None, [call("d1", "driver_read_screen", args)])
            else:
                screen = json.loads(tools_done[-1]["content"]).get("screen", {}).get("text", "?")
                end = "**DONE.**" if mode == "driver+dot" else "DONE"
                out = answer(f"My screen says {screen}. Thanks. {end}")
        else:
            if "diagnose_charger" not in offered or "clear_scenarios" in offered:
                self._send(400, b'{"error": "wrong tool set offered"}')
                return
            problem = strict_problem(body["messages"])
            if problem:
                self._send(400, json.dumps({"error": {"message": problem}}).encode())
                return
            out = self._variant(str(mode), body["messages"])
        self._send(200, json.dumps(out).encode())

    @staticmethod
    def _variant(mode: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """``follower`` with odd but valid answers, flags after ``+``: ``objargs``
        (arguments as an object), ``noid`` (tool calls without ids), ``multi`` (two calls
        in one message), ``talk`` (text beside the tool calls), ``quiet`` (the last words
        said beside a tool call, then an empty answer), ``parts`` (content as a list of
        text parts), ``nullargs`` (a call whose arguments are JSON ``null``)."""
        flags = set(mode.split("+")[1:])
        prev = messages[-1]
        if "quiet" in flags and prev["role"] == "tool":
            asked = [m for m in messages if m["role"] == "assistant"][-1]
            if asked.get("content"):
                return answer("")  # said it all beside the tool call
        out = follower(messages, multi="multi" in flags)
        message = out["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if "quiet" in flags and not calls and message["content"] != "Glad to help. Goodbye.":
            calls = message["tool_calls"] = [call("q1", "get_charger", {"cp_id": "EVSE001"})]
        if "nullargs" in flags and messages[-1]["role"] == "user" and calls:
            calls.insert(0, call("n1", "list_chargers", "null"))  # no arguments: JSON null
        if "talk" in flags and calls and not message["content"]:
            message["content"] = "One moment, let me look."
        for c in calls:
            if "objargs" in flags:
                c["function"]["arguments"] = json.loads(c["function"]["arguments"])
            if "noid" in flags:
                del c["id"]
        if "parts" in flags and isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        return out

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
        if self.path == "/session":  # says the session it was given
            self._send(200, json.dumps({"text": body["session"], "end": True}).encode())
            return
        if self.path == "/endstr":  # "end" as a string, not a boolean
            self._send(200, json.dumps({"text": "Hello.", "end": "false"}).encode())
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
        if self.path == "/huge":  # a 5 MB body to an agent tool's route
            cp_id = spoken_id(body["spoken"])
            try:
                rest(base, "POST", f"/chargers/{cp_id}/diagnosis", {"pad": "x" * 5_000_000})
                outcome = "ok"
            except urllib.error.HTTPError as exc:
                outcome = str(exc.code)
            except OSError as exc:
                outcome = type(exc).__name__
            self._send(200, json.dumps({"text": outcome, "end": True}).encode())
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
