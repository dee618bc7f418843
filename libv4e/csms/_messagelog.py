"""The OCPP message log: every message passes :meth:`MessageLog.observe`, which hands it
to the observers (one broadcast mechanism: subscribers are observers that feed a memory
channel) and buffers it for batched writes to the store, with retention.

A message that changes a transaction does not wait for the batch: the change's writer
:meth:`takes <MessageLog.take>` the charger's buffered messages (the call among them) and
writes them, with the call's answer, in the same database transaction as the change; the
answer's record is then marked ``logged`` when it is sent, and the batch skips it. An
answer that could not be sent after all is :meth:`retracted <MessageLog.retract>`."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import trio

from libv4e.csms._registry import parse_time
from libv4e.csms._store import MessageStore, StoreDataError, StoreError
from libv4e.transport._connection import MessageRecord
from libv4e.transport._quietlog import QuietLog

log = logging.getLogger("libv4e.csms")

RECENT_MESSAGES = 200
MAX_LOG_BACKLOG = 50_000
"""Messages kept in memory while the store refuses writes; beyond, the oldest are dropped."""
FLUSH_AT = 500
"""Buffered messages that wake the writer before its interval ends."""


class MessageLog:
    """Buffered, batched writes of the message log, and its broadcast to observers."""

    def __init__(self, store: MessageStore, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock
        self._buffer: list[MessageRecord] = []
        self.quiet = QuietLog(log)
        """Store failures, logged once a minute (see transport._quietlog)."""
        self._wakeup = trio.Event()
        self._observers: list[Callable[[MessageRecord], None]] = []
        self._inflight: collections.Counter[str] = collections.Counter()
        """Chargers with messages in a batch being written (how many batches)."""
        self._landed = trio.Event()
        """Set (and replaced) whenever a batch write ends."""
        self._retracted: list[MessageRecord] = []
        """Answers logged with their change and then not sent: deleted with the next flush."""

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
        if not store or record.logged:  # logged: written already, with its change
            return
        self._buffer.append(record)
        if len(self._buffer) >= FLUSH_AT:
            self._wakeup.set()

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

    def retract(self, record: MessageRecord) -> None:
        """An answer written with its change (``logged``) could not be sent after all:
        its row is deleted with the next flush, so the log shows only what went out."""
        self._retracted.append(record)
        self._wakeup.set()

    async def flush(self) -> None:
        """Write the buffered messages to the store now (and delete retracted answers)."""
        retracted, self._retracted = self._retracted, []
        if retracted:
            try:
                await self.store.retract_messages(retracted)
            except StoreError:  # the database failed: again with the next flush
                self.quiet.error("could not retract %d unsent answers", len(retracted))
                if len(self._retracted) < MAX_LOG_BACKLOG:
                    self._retracted[:0] = retracted
            except Exception:
                self.quiet.error("retracting unsent answers failed", exc_info=True)
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        chargers = {r.cp_id for r in batch}
        self._inflight.update(chargers)
        try:
            await self._write(batch)
        finally:
            self._inflight.subtract(chargers)
            for cp_id in chargers:
                if self._inflight[cp_id] <= 0:
                    del self._inflight[cp_id]
            self._landed.set()
            self._landed = trio.Event()

    async def take(self, cp_id: str) -> list[MessageRecord]:
        """Take ``cp_id``'s buffered messages out of the buffer, oldest first, for the
        caller to write with a change (see :meth:`give_back` if that write fails). Waits
        for a batch being written that holds messages of ``cp_id``: the charger's log
        stays in order, and a message is never in two writes at once."""
        while self._inflight[cp_id] > 0:
            await self._landed.wait()
        taken = [r for r in self._buffer if r.cp_id == cp_id]
        if taken:
            self._buffer = [r for r in self._buffer if r.cp_id != cp_id]
        return taken

    def give_back(self, records: Sequence[MessageRecord]) -> None:
        """Return messages :meth:`taken <take>` whose write failed: the next batch writes
        them (before the charger's newer messages)."""
        kept = [r for r in records if not r.logged]
        if kept:
            self._buffer[:0] = kept

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
