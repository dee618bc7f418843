"""The OCPP message log: every message passes :meth:`MessageLog.observe`, which hands it
to the observers (one broadcast mechanism: subscribers are observers that feed a memory
channel) and buffers it for batched writes to the store, with retention."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import trio

from libv4e.csms._quietlog import QuietLog
from libv4e.csms._registry import parse_time
from libv4e.csms._store import Store, StoreDataError, StoreError
from libv4e.transport._connection import MessageRecord

log = logging.getLogger("libv4e.csms")

RECENT_MESSAGES = 200
MAX_LOG_BACKLOG = 50_000
"""Messages kept in memory while the store refuses writes; beyond, the oldest are dropped."""
FLUSH_AT = 500
"""Buffered messages that wake the writer before its interval ends."""


class MessageLog:
    """Buffered, batched writes of the message log, and its broadcast to observers."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock
        self._buffer: list[MessageRecord] = []
        self.quiet = QuietLog(log)
        """Store failures, logged once a minute (see _quietlog)."""
        self._wakeup = trio.Event()
        self._observers: list[Callable[[MessageRecord], None]] = []

    def add_observer(self, observer: Callable[[MessageRecord], None]) -> None:
        """Call ``observer(record)`` for every OCPP message, in order, as it passes."""
        self._observers.append(observer)

    def remove_observer(self, observer: Callable[[MessageRecord], None]) -> None:
        """Stop calling ``observer`` (nothing if it is not there)."""
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    def observe(self, record: MessageRecord, *, store: bool = True) -> None:
        """A message passed: tell the observers and (``store``) buffer it for the store."""
        for observer in list(self._observers):
            try:
                observer(record)
            except Exception:
                log.exception("message observer failed")
        if not store:
            return
        self._buffer.append(record)
        if len(self._buffer) >= FLUSH_AT:
            self._wakeup.set()

    def take_call(
        self, cp_id: str, action: str, fields: Mapping[str, Any] | None = None
    ) -> list[MessageRecord]:
        """Take the oldest buffered inbound ``action`` call of ``cp_id`` whose payload has
        ``fields`` out of the batch, to be written with the change it makes, in the same
        database transaction (a list of one; empty when it was written already)."""
        for i, r in enumerate(self._buffer):
            if (
                r.cp_id == cp_id
                and r.direction == "in"
                and r.message_type == 2
                and r.action == action
                and all(r.payload.get(k) == v for k, v in (fields or {}).items())
            ):
                return [self._buffer.pop(i)]
        return []

    def put_back(self, records: list[MessageRecord]) -> None:
        """Records taken with :meth:`take_call` whose write failed: logged with the next
        batch after all."""
        self._buffer[:0] = records

    @contextlib.asynccontextmanager
    async def subscribe(
        self, buffer: int = 256
    ) -> AsyncIterator[trio.MemoryReceiveChannel[MessageRecord]]:
        """Receive every OCPP message as it passes, while the block runs."""
        send, receive = trio.open_memory_channel[MessageRecord](buffer)

        def forward(record: MessageRecord) -> None:
            try:
                send.send_nowait(record)
            except trio.WouldBlock:
                pass  # a slow listener misses messages rather than slowing chargers down
            except trio.BrokenResourceError:
                self.remove_observer(forward)

        self.add_observer(forward)
        try:
            yield receive
        finally:
            self.remove_observer(forward)
            send.close()

    async def wait(self, timeout: float) -> None:
        """Sleep ``timeout`` seconds, or less if the buffer filled up."""
        with trio.move_on_after(timeout):
            await self._wakeup.wait()
        self._wakeup = trio.Event()

    async def flush(self) -> None:
        """Write the buffered messages to the store now."""
        batch, self._buffer = self._buffer, []
        if batch:
            await self._write(batch)

    async def _write(self, batch: list[MessageRecord]) -> None:
        try:
            await self.store.log_messages(batch)
        except StoreError as exc:
            if isinstance(exc, StoreDataError):
                await self._write_one_by_one(batch)
            else:  # the database itself failed: keep them for the next attempt
                self.quiet.error("could not write %d logged messages", len(batch), exc_info=True)
                if len(self._buffer) < MAX_LOG_BACKLOG:
                    self._buffer[:0] = batch
        except Exception:  # a bug or an unforeseen value: the same as bad data
            self.quiet.error(
                "writing %d logged messages failed; retrying one by one", len(batch), exc_info=True
            )
            await self._write_one_by_one(batch)

    async def _write_one_by_one(self, batch: list[MessageRecord]) -> None:
        """One record the store cannot take must not hold back (or retry forever) the
        others: write them one by one and drop only the offenders."""
        for record in batch:
            try:
                await self.store.log_messages([record])
            except Exception as exc:
                self.quiet.error("%s: dropped a logged message: %r", record.cp_id, exc)

    async def recent(self, cp_id: str, limit: int = RECENT_MESSAGES) -> list[MessageRecord]:
        """The last ``limit`` messages of ``cp_id`` in the store, oldest first."""
        rows = await self.store.messages(cp_id, limit=limit, offset=0)
        return [
            MessageRecord(
                r["cp_id"],
                r["direction"],
                r["message_type"],
                r["unique_id"],
                r["action"],
                r["payload"],
                parse_time(r["at"]) or self.clock(),
            )
            for r in reversed(rows)
        ]

    async def prune(
        self, max_rows: int | None, max_age: float | None, per_charger: int | None = None
    ) -> int:
        """Apply the retention now; returns how many messages were deleted."""
        if max_rows is None and max_age is None and per_charger is None:
            return 0
        older_than = None if max_age is None else self.clock() - dt.timedelta(seconds=max_age)
        deleted = await self.store.prune_messages(
            max_rows=max_rows, older_than=older_than, per_charger=per_charger
        )
        if deleted:
            log.info("message log retention deleted %d old messages", deleted)
        return deleted
