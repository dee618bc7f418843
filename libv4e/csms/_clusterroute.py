"""Routing between cluster nodes: a command for a charger another node holds goes there
with PostgreSQL LISTEN/NOTIFY (bodies over the NOTIFY limit through the mailbox table) and
the charger's real answer comes back (see :mod:`libv4e.csms._cluster`)."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import trio

from libv4e._errors import (
    CallTimeoutError,
    ConnectionLostError,
    LocalProtocolError,
    OcppError,
    RemoteCallError,
    UnsupportedCommandError,
)
from libv4e.csms._clusterbase import NOTIFY_LIMIT, ClusterState, _Pending, channel_of
from libv4e.csms._store import StoreError
from libv4e.protocol._convert import (
    CATALOGUES,
    action_of,
    from_json_payload,
    to_json_payload,
    version_of,
)
from libv4e.protocol._version import OcppVersion

log = logging.getLogger("libv4e.cluster")


class ClusterRouting:
    """Sending to, and serving calls from, the other nodes (over the node's state)."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    # -- routing ---------------------------------------------------------------------------

    async def send(self, cp_id: str, payload: Any, *, timeout: float) -> Any:
        """Send a command to a charger held by another node; its typed answer.

        Raises what :meth:`CentralSystem.send` raises, as if the charger were local."""
        from libv4e._errors import ChargerNotConnectedError

        action = action_of(payload)
        holder = await self.state.current_holder(cp_id)
        if holder is None or holder == self.state.node_id:
            raise ChargerNotConnectedError(cp_id, cp_id in self.state.csms.registry)
        request_id = secrets.token_hex(8)
        slot = self.state.pending[request_id] = _Pending()
        try:
            await self.post(
                holder,
                {
                    "kind": "call",
                    "id": request_id,
                    "from": self.state.node_id,
                    "cp_id": cp_id,
                    "action": action,
                    "version": version_of(payload).label,
                    "payload": to_json_payload(payload),
                    "timeout": timeout,
                },
            )
            with trio.move_on_after(timeout + self.state.config.reply_grace):
                await slot.event.wait()
        finally:
            del self.state.pending[request_id]
        reply = slot.reply
        if reply is None:  # the holder died or is cut off
            raise CallTimeoutError(action, timeout)
        known = cp_id in self.state.csms.registry
        return _decode_reply(cp_id, action, version_of(payload), reply, known=known)

    async def probe(self, cp_id: str, timeout: float) -> bool:
        """Whether ``cp_id`` is connected to another live node and answers a websocket
        ping there within ``timeout`` seconds (the identity policy for a second
        connection, applied across nodes)."""
        holder = await self.state.current_holder(cp_id)
        if holder is None or holder == self.state.node_id:
            return False
        request_id = secrets.token_hex(8)
        slot = self.state.pending[request_id] = _Pending()
        try:
            await self.post(
                holder,
                {
                    "kind": "probe",
                    "id": request_id,
                    "from": self.state.node_id,
                    "cp_id": cp_id,
                    "timeout": timeout,
                },
            )
            # a holder that does not answer at all (it died; its lease has not run out
            # yet) counts as a dead first connection: the newcomer waits no longer
            with trio.move_on_after(timeout + 1.0):
                await slot.event.wait()
        finally:
            del self.state.pending[request_id]
        return bool(slot.reply and slot.reply.get("alive") is True)

    async def _serve_probe(self, message: dict[str, Any]) -> None:
        conn = self.state.csms.connection(message["cp_id"])
        timeout = min(30.0, float(message.get("timeout") or 5.0))
        alive = conn is not None and await conn.ping(timeout)
        try:
            await self.post(message["from"], {"kind": "reply", "id": message["id"], "alive": alive})
        except StoreError as exc:
            log.error("could not answer a presence probe: %s", exc)

    async def _serve_call(self, message: dict[str, Any]) -> None:
        cp_id, action, sender = message["cp_id"], message["action"], message["from"]
        reply: dict[str, Any]
        if self.state.routed.available_tokens < 1:
            reply = {"error": "lost", "message": "the holding node is too busy"}
        else:
            async with self.state.routed:
                reply = await self._call_locally(cp_id, action, message)
        reply |= {"kind": "reply", "id": message["id"]}
        try:
            await self.post(sender, reply)
        except StoreError as exc:
            log.error("could not answer a routed %s for %s: %s", action, cp_id, exc)

    async def _call_locally(
        self, cp_id: str, action: str, message: dict[str, Any]
    ) -> dict[str, Any]:
        csms = self.state.csms
        if csms.connection(cp_id) is None:
            return {"error": "not_connected"}
        try:
            version = OcppVersion.parse(str(message.get("version") or "1.6"))
            cls = CATALOGUES[version].calls.get(action)
            if cls is None or not isinstance(message.get("payload"), dict):
                raise LocalProtocolError(f"cannot route {action!r}")
            payload = from_json_payload(cls, message["payload"])
            timeout = float(message.get("timeout") or csms.config.call_timeout)
            # as a command asked here: in the version the charger speaks (a 1.6 command
            # to a 2.0.1 station is its 2.0.1 call), its answer recorded here
            result = await csms.send(cp_id, payload, timeout=timeout)
        except UnsupportedCommandError as exc:
            return {"error": "unsupported", "version": exc.version, "how": exc.how}
        except RemoteCallError as exc:
            return {
                "error": "call_error",
                "code": str(exc.code),
                "description": exc.description,
                "details": exc.details,
            }
        except CallTimeoutError as exc:
            return {"error": "timeout", "timeout": exc.timeout}
        except ConnectionLostError as exc:
            return {"error": "lost", "message": str(exc)}
        except (LocalProtocolError, OcppError, ValueError) as exc:
            return {"error": "invalid", "message": str(exc)}
        return {"ok": to_json_payload(result)}

    # -- messages between nodes --------------------------------------------------------------

    async def post(self, node_id: str, body: dict[str, Any]) -> None:
        """NOTIFY ``body`` to a node (through the mailbox table if it is too large)."""
        text = json.dumps(body)
        channel = channel_of(node_id)

        def work(db: Any) -> None:
            out = text
            if len(out.encode()) > NOTIFY_LIMIT:
                row = db.execute(
                    "INSERT INTO mailbox (body) VALUES (%s) RETURNING id", (text,)
                ).fetchone()
                out = json.dumps({"kind": "mailbox", "id": row[0]})
            db.execute("SELECT pg_notify(%s, %s)", (channel, out))

        await self.state.store.run(work)

    async def listen(self, *, task_status: trio.TaskStatus[None]) -> None:
        """LISTEN on this node's channel on a connection of its own, reconnecting if it
        drops (commands routed here meanwhile time out at their sender)."""
        import psycopg

        started = False
        while True:
            conn: Any = None
            try:
                conn = await trio.to_thread.run_sync(
                    lambda: psycopg.connect(
                        self.state.store.url, autocommit=True, connect_timeout=10
                    )
                )
                await trio.to_thread.run_sync(conn.execute, f'LISTEN "{self.state.channel}"')
                if not started:
                    started = True
                    task_status.started()
                pgconn = conn.pgconn
                while True:
                    await trio.lowlevel.wait_readable(pgconn.socket)
                    pgconn.consume_input()
                    while (note := pgconn.notifies()) is not None:
                        self._on_message(note.extra.decode("utf-8", "replace"))
            except psycopg.Error as exc:
                if not started:
                    raise StoreError(f"cannot listen for routed commands: {exc}") from exc
                log.warning("lost the LISTEN connection (%s); reconnecting", exc)
            finally:
                if conn is not None:
                    conn.close()
            await trio.sleep(1)

    def _on_message(self, text: str) -> None:
        assert self.state.nursery is not None
        try:
            message = json.loads(text)
            kind = message["kind"]
            if kind == "reply":
                slot = self.state.pending.get(message.get("id"))
                if slot is not None:
                    slot.reply = message
                    slot.event.set()
            elif kind == "call":
                for key in ("id", "from", "cp_id", "action"):
                    if not isinstance(message[key], str):
                        raise TypeError(key)
                self.state.nursery.start_soon(self._serve_call, message)
            elif kind == "probe":
                for key in ("id", "from", "cp_id"):
                    if not isinstance(message[key], str):
                        raise TypeError(key)
                float(message.get("timeout") or 5.0)
                self.state.nursery.start_soon(self._serve_probe, message)
            elif kind == "evict":
                self.state.evict(str(message["cp_id"]), int(message["claim"]))
            elif kind == "mailbox":
                self.state.nursery.start_soon(self._open_mailbox, int(message["id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed cluster message")

    async def _open_mailbox(self, mail_id: int) -> None:
        try:
            row = await self.state.store.run(
                lambda db: db.execute(
                    "DELETE FROM mailbox WHERE id = %s RETURNING body", (mail_id,)
                ).fetchone()
            )
        except StoreError as exc:
            log.error("could not read cluster mailbox %d: %s", mail_id, exc)
            return
        if row is not None:
            self._on_message(json.dumps(row[0]))


def _decode_reply(
    cp_id: str, action: str, version: OcppVersion, reply: dict[str, Any], *, known: bool
) -> Any:
    """The answer to a routed call of ``action`` (of OCPP ``version``: the answer is of
    the same version, a translated one read back), or the error it came back with."""
    from libv4e._errors import ChargerNotConnectedError

    error = reply.get("error")
    if error is None:
        return from_json_payload(CATALOGUES[version].results[action], reply.get("ok") or {})
    if error == "not_connected":
        raise ChargerNotConnectedError(cp_id, known)
    if error == "unsupported":
        raise UnsupportedCommandError(
            action, str(reply.get("version")), str(reply.get("how") or "")
        )
    if error == "call_error":
        raise RemoteCallError(
            action,
            str(reply.get("code")),
            str(reply.get("description") or ""),
            reply.get("details") or {},
        )
    if error == "timeout":
        raise CallTimeoutError(action, float(reply.get("timeout") or 0))
    if error == "invalid":
        raise LocalProtocolError(str(reply.get("message")))
    raise ConnectionLostError(str(reply.get("message") or f"connection to {cp_id} lost"))
