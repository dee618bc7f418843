"""The ledger's I/O shell: the locks, the transaction ids, and the one write per change.

:class:`~libv4e.csms._ledger.Ledger` plans (sans-IO); the :class:`Bookkeeper` takes a
charger's transaction lock, makes sure a reserved transaction id is at hand, writes a
planned change through the store in one database transaction (with the call and answer
that caused it in the message log) and only then has the ledger apply it. It also closes
sessions left doubtful (:meth:`Bookkeeper.reconcile`). The handlers book transaction
messages through it; nothing else writes transactions.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import trio

from libv4e._errors import StoreDataError, StoreError, TransactionIdsExhausted
from libv4e.csms._config import CsmsConfig
from libv4e.csms._ledger import Ledger
from libv4e.csms._messagelog import MessageLog
from libv4e.csms._store import TransactionStore
from libv4e.csms._txbook import Change
from libv4e.transport._connection import MessageRecord

log = logging.getLogger("libv4e.csms")

MAX_TRANSACTION_ID = 2**31 - 1
"""The largest transaction id an OCPP 1.6 message can carry (a 32-bit integer)."""


class Bookkeeper:
    """Books transaction events: one charger at a time, one write per change."""

    def __init__(
        self,
        ledger: Ledger,
        store: TransactionStore,
        messages: MessageLog,
        *,
        clock: Callable[[], dt.datetime],
        config: Callable[[], CsmsConfig],
        connected: Callable[[str], bool],
        charger_changed: Callable[[str], None],
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._messages = messages
        self._clock = clock
        self._config = config
        self._connected = connected
        self._charger_changed = charger_changed
        self._locks: dict[str, trio.Lock] = {}
        self._id_lock = trio.Lock()

    def lock(self, cp_id: str) -> trio.Lock:
        """Transaction messages of one charger are booked one at a time (a replaced
        connection may still be finishing one); different chargers run concurrently."""
        lock = self._locks.get(cp_id)
        if lock is None:
            lock = self._locks[cp_id] = trio.Lock()
        return lock

    async def ensure_transaction_ids(self) -> None:
        """Make sure the book has a reserved id to hand out (reserving a block from the
        store when it runs low); after this returns no checkpoint passes before use."""
        async with self._id_lock:
            if self._ledger.book.ids_left < 1:
                block = max(1, self._config().transaction_id_block)
                first = await self._store.reserve_transaction_ids(block)
                usable = min(block, MAX_TRANSACTION_ID - first + 1)  # OCPP ids are 32-bit
                if usable < 1:
                    raise TransactionIdsExhausted(
                        f"every transaction id up to {MAX_TRANSACTION_ID} was handed out; "
                        "ids are never reused: archive the transactions into a new database "
                        "(--db) to go on"
                    )
                self._ledger.book.add_ids(first, usable)

    async def commit(self, change: Change, answer: MessageRecord | None = None) -> bool:
        """Write a change of the book to the store, then apply it (a failed write leaves
        the book as it was and raises StoreError: the charger is answered InternalError,
        so it retries).

        ``answer``: the answer about to be sent to the charger call that caused the
        change. It is written to the message log in the change's database transaction,
        after the charger's messages still waiting for the batched log writer (the call
        among them), so a change that survives a crash has its call and answer logged.
        Returns whether it was (the caller marks its reply ``logged``); a message the
        store cannot take is left to the batched writer, not allowed to fail the change."""
        logged = False
        if change.writes:
            logged = await self._write_change(change, answer)
        self._ledger.apply(change)
        for tx in change.closed:
            if tx.reconciled is not None and tx.stop_reason == "Other":
                log.warning(
                    "%s: transaction %s closed by the CSMS: %s",
                    tx.cp_id,
                    tx.transaction_id,
                    tx.reconciled,
                )
        for cp_id in {t.cp_id for t in (*change.closed, *change.new)}:
            self._charger_changed(cp_id)  # the connector links moved
        return logged

    def answer_not_sent(self, answer: MessageRecord) -> None:
        """An answer logged with its change (:meth:`commit`) could not be sent (the
        socket closed): its log row is deleted with the next flush."""
        self._messages.retract(answer)

    async def _write_change(self, change: Change, answer: MessageRecord | None) -> bool:
        messages = [] if answer is None else [*await self._messages.take(answer.cp_id), answer]
        try:
            try:
                await self._write_rows(change, messages)
            except StoreDataError:
                if not messages:
                    raise
                self._messages.give_back(messages)
                messages = []
                await self._write_rows(change, messages)
        except BaseException:
            self._messages.give_back(messages)
            raise
        return bool(messages)

    async def _write_rows(self, change: Change, messages: Sequence[MessageRecord]) -> None:
        """One event, one database transaction (the ledger plans one of the two)."""
        if (
            change.new
            or change.changed
            or change.reservations
            or change.profiles
            or change.meter_values
        ):
            await self._store.write_transactions(
                change.new,
                change.changed,
                log=messages,
                reservations=change.reservations,
                profiles=change.profiles,
                meter_values=change.meter_values,
            )
            messages = ()
        if change.unmatched is not None:
            await self._store.add_unmatched_stop(change.unmatched, log=messages)

    async def reconcile(self) -> None:
        """Close sessions left doubtful (charger rebooted, StartTransaction answer lost)
        that no message confirmed within ``config.reconcile_grace`` seconds."""
        for cp_id in sorted(self._ledger.book.doubted_chargers()):
            async with self.lock(cp_id):  # planned afresh, after any write
                connected = [cp_id] if self._connected(cp_id) else []
                now = self._clock()
                change = self._ledger.complete(
                    self._ledger.book.expire(now, self._config().reconcile_grace, connected), now
                )
                if not change.changed:
                    continue
                try:
                    await self.commit(change)
                except StoreError as exc:  # tried again next time
                    log.warning("%s: could not reconcile its sessions: %s", cp_id, exc)
                except Exception:  # nothing a charger sent may end the CSMS
                    log.exception("%s: could not reconcile its sessions", cp_id)
