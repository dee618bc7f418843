"""The evidence window of a diagnosis: which of a charger's messages speak of the present,
(see :mod:`._diagnosis`)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from libv4e.csms._as16 import as_16_records
from libv4e.scenarios._findings import DiagnosisOptions, WindowReason
from libv4e.transport._connection import MessageRecord

if TYPE_CHECKING:
    from libv4e.csms._central import CentralSystem

from libv4e.protocol._session import MessageType
from libv4e.scenarios._faults import FAULT_VENDOR_ID as FAULT_VENDOR_ID
from libv4e.transport._connection import Direction

"""The vendor id of the sandbox's fault DataTransfers (FaultStart / FaultClear)."""


def is_message(record: MessageRecord, kind: MessageType, action: str, direction: Direction) -> bool:
    """Whether ``record`` is a message of type ``kind`` for
    ``action`` in ``direction``."""
    return (record.message_type, record.action, record.direction) == (kind, action, direction)


class EvidenceWindow:
    """The messages of one charger that are evidence of the present: from its last
    BootNotification or accepted sandbox FaultStart / FaultClear on (:meth:`load`), with
    each CALL's answer at hand."""

    def __init__(self, csms: CentralSystem, cp_id: str, options: DiagnosisOptions) -> None:
        self.csms, self.cp_id, self.options = csms, cp_id, options
        self.records: list[MessageRecord] = []
        self.answers: dict[tuple[str, str], MessageRecord] = {}
        self.window_start: dt.datetime | None = None
        self.window_reason = WindowReason.NONE
        self.reset_before_boot = False
        """The window opened at a boot that followed an accepted Reset (a remedy)."""
        self.wire: dict[tuple[str, Direction, MessageType], MessageRecord] = {}
        """A 2.0.1 station's records as they went over the wire, by the key of the 1.6
        reading the rules saw (a citation shows the wire's: the TransactionEvent)."""
        self.now = csms.clock()

    def as_sent(self, record: MessageRecord) -> MessageRecord:
        """``record`` as it went over the wire (itself, for a 1.6 charger)."""
        return self.wire.get((record.unique_id, record.direction, record.message_type), record)

    # -- the window -------------------------------------------------------------------------

    def answer(self, record: MessageRecord) -> MessageRecord | None:
        """The CALLRESULT / CALLERROR answering the CALL ``record``."""
        return self.answers.get((record.unique_id, record.direction))

    def accepted(self, record: MessageRecord) -> bool:
        answer = self.answer(record)
        if answer is None or answer.message_type != MessageType.CALLRESULT:
            return False
        payload = answer.payload
        status = payload.get("status") or (payload.get("idTagInfo") or {}).get("status")
        return status == "Accepted"

    async def load(self) -> None:
        everything = await self.csms.recent_messages(self.cp_id)
        state = self.csms.registry.get(self.cp_id)
        if state is not None and state.ocpp_version == "2.0.1":  # read in 1.6 terms
            book, cp_id = self.csms.transactions, self.cp_id

            def session_of(charger_id: str) -> int | None:
                tx = book.of_charger(cp_id, charger_id)
                return None if tx is None else tx.transaction_id

            read = as_16_records(everything, session_of)
            self.wire = {
                (r.unique_id, r.direction, r.message_type): w
                for r, w in zip(read, everything, strict=True)
                if r is not w
            }
            everything = read
        for r in everything:
            if r.message_type in (MessageType.CALLRESULT, MessageType.CALLERROR):
                self.answers[
                    (r.unique_id, Direction.OUT if r.direction == Direction.IN else Direction.IN)
                ] = r
        start = 0
        self.window_reason = WindowReason.OLDEST if everything else WindowReason.NONE
        reset: MessageRecord | None = None
        self.reset_before_boot = False
        for i, r in enumerate(everything):
            if is_message(r, MessageType.CALL, "Reset", Direction.OUT) and self.accepted_reset(r):
                reset = r
            elif is_message(r, MessageType.CALL, "BootNotification", Direction.IN):
                start, self.window_reason = i, WindowReason.BOOT
                self.reset_before_boot, reset = reset is not None, None
            elif (
                is_message(r, MessageType.CALL, "DataTransfer", Direction.OUT)
                and r.payload.get("vendorId") == FAULT_VENDOR_ID
                and r.payload.get("messageId") in ("FaultStart", "FaultClear")
                and self.accepted(r)
            ):
                start, self.window_reason = i, WindowReason.FAULT
                self.reset_before_boot = False  # the boot is older than the window
        self.records = everything[start:]
        self.window_start = self.records[0].at if self.records else None

    def accepted_reset(self, record: MessageRecord) -> bool:
        answer = self.answer(record)
        return answer is not None and answer.payload.get("status") == "Accepted"
