"""The operator section of the central system: commands whose effects the
CSMS books — local lists, reservations, charging profiles, firmware and diagnostics —
and the records of what the chargers answered and reported."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e._errors import ChargerNotConnectedError, Libv4eError, MessageTooLarge
from libv4e.csms._auth import AuthorizationList, IdTag
from libv4e.csms._books import InvalidTransition
from libv4e.csms._config import KEEP_FINISHED, CsmsConfig
from libv4e.csms._firmware import FirmwareBook
from libv4e.csms._locallists import ChargerLocalList, LocalListBook, LocalListUpdate
from libv4e.csms._profiles import ChargingProfileRecord, ProfileBook, limit_at
from libv4e.csms._registry import Registry, parse_time
from libv4e.csms._reservations import Reservation, ReservationBook
from libv4e.csms._store import OperatorBooksStore, StoreError
from libv4e.csms._txbook import TransactionBook
from libv4e.protocol._convert import to_json_payload

log = logging.getLogger("libv4e.csms")


@dataclasses.dataclass
class Outcome:
    """What a command did: the charger's answer (``result``; None when the exchange
    failed, see ``error``) and the operator-book records it touched, JSON-ready
    (``records``: e.g. ``{"reservation": {...}}``), which are there also when it failed."""

    result: Any = None
    records: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: Libv4eError | None = None

    def answer(self) -> Any:
        """The charger's answer; raises the exchange's error if it failed."""
        if self.error is not None:
            raise self.error
        return self.result


async def outcome_of(work: Callable[[dict[str, Any]], Any]) -> Outcome:
    """Run ``work(records)`` (a coroutine function that fills ``records``) as an
    :class:`Outcome`: its result, or the libv4e error it raised, with the records."""
    records: dict[str, Any] = {}
    try:
        return Outcome(await work(records), records)
    except Libv4eError as exc:
        return Outcome(None, records, exc)


class Operator:
    """The operator books and the commands that change them (see :meth:`operate`).

    Its collaborators are given, not reached through the central system: the store of
    the books, the registry and the transactions (read), the authorization list and the
    two ways to change it persistently, the clock, the configuration (the frame limit),
    and how to send a command and whether a charger can be reached, and the charger's
    bookkeeping lock (see :mod:`~libv4e.csms._bookkeeper`)."""

    def __init__(
        self,
        store: OperatorBooksStore,
        *,
        registry: Registry,
        transactions: TransactionBook,
        auth: AuthorizationList,
        upsert_tag: Callable[[IdTag], Awaitable[int]],
        remove_tag: Callable[[str], Awaitable[int]],
        clock: Callable[[], dt.datetime],
        config: Callable[[], CsmsConfig],
        send: Callable[..., Awaitable[Any]],
        reachable: Callable[[str], bool],
        lock: Callable[[str], trio.Lock],
    ) -> None:
        self.store = store
        self._registry = registry
        self._transactions = transactions
        self._auth = auth
        self._upsert_tag = upsert_tag
        self._remove_tag = remove_tag
        self._clock = clock
        self._config = config
        self._send = send
        self._reachable = reachable
        self._lock = lock
        """A charger's bookkeeping lock (the ledger's): the reservation and profile
        records a transaction event moves are recorded under it, so an answer recorded
        here never interleaves with a planned change of the same charger."""
        self.reservations = ReservationBook()
        self.profiles = ProfileBook()
        self.local_lists = LocalListBook()
        self.firmware = FirmwareBook()

    async def load(self) -> None:
        """Read the operator books from the store."""
        self.local_lists.load(await self.store.load_local_lists())
        self.reservations.load(
            await self.store.load_reservations(finished=KEEP_FINISHED),
            await self.store.last_reservation_id(),
        )
        self.profiles.load(
            await self.store.load_charging_profiles(finished=KEEP_FINISHED),
            await self.store.last_charging_profile_record_id(),
        )
        self.firmware.load(await self.store.load_firmware_states())

    def require_connection(self, cp_id: str) -> None:
        if not self._reachable(cp_id):  # here, or on another node of a cluster
            raise ChargerNotConnectedError(cp_id, cp_id in self._registry)

    async def operate(self, cp_id: str, payload: Any, *, timeout: float | None = None) -> Outcome:
        """Send a command, and record what it changes in the operator books:
        ReserveNow / CancelReservation (:attr:`reservations`), SetChargingProfile,
        ClearChargingProfile and a RemoteStartTransaction's profile (:attr:`profiles`),
        SendLocalList and GetLocalListVersion (:attr:`local_lists`), UpdateFirmware and
        GetDiagnostics (:attr:`firmware`). The :class:`Outcome` holds the answer (or the
        error) and the records touched; for GetCompositeSchedule, what the CSMS believes
        is installed (``csms_view``)."""
        return await outcome_of(lambda records: self._operate(cp_id, payload, timeout, records))

    async def _operate(
        self, cp_id: str, payload: Any, timeout: float | None, state: dict[str, Any]
    ) -> Any:
        if isinstance(payload, call.ReserveNow):
            return await self._reserve_now(cp_id, payload, timeout, state)
        if isinstance(payload, call.SendLocalList):
            upserts = [tag_of(e) for e in payload.local_authorization_list if e.id_tag_info]
            removals = [e.id_tag for e in payload.local_authorization_list if not e.id_tag_info]
            result, charger, _ = await self.send_local_list(
                cp_id,
                str(payload.update_type),
                upserts,
                removals,
                list_version=payload.list_version,
                update_csms_list=False,
                timeout=timeout,
            )
            state["local_list"] = charger.as_dict(entries=False)
            return result
        if isinstance(payload, (call.SetChargingProfile, call.RemoteStartTransaction)):
            return await self._set_profile(cp_id, payload, timeout, state)
        if isinstance(payload, (call.UpdateFirmware, call.GetDiagnostics)):
            return await self._firmware_request(cp_id, payload, timeout, state)
        result = await self._send(cp_id, payload, timeout=timeout)
        now = self._clock()
        if isinstance(payload, call.CancelReservation):
            async with self._lock(cp_id):
                record = self.reservations.cancel_answered(
                    cp_id, payload.reservation_id, str(result.status), now
                )
                if record is not None:
                    await self.store.save_reservation(record)
            if record is not None:
                state["reservation"] = record.as_dict()
        elif isinstance(payload, call.ClearChargingProfile):
            cleared: list[ChargingProfileRecord] = []
            async with self._lock(cp_id):
                matched = self.profiles.matching(
                    cp_id,
                    payload.id,
                    payload.connector_id,
                    None
                    if payload.charging_profile_purpose is None
                    else str(payload.charging_profile_purpose),
                    payload.stack_level,
                )
                if result.status == enums.ClearChargingProfileStatus.accepted:
                    cleared = self.profiles.cleared(matched, now)
                    await self.store.save_charging_profiles(cleared)
            state["cleared"] = [r.as_dict() for r in cleared]
            if not cleared and matched:  # the charger disagrees with what the CSMS believed
                state["believed_installed"] = [r.as_dict() for r in matched]
        elif isinstance(payload, call.GetCompositeSchedule):
            state["csms_view"] = await self.believed_schedule(cp_id, payload.connector_id)
        elif isinstance(payload, call.GetLocalListVersion):
            charger = self.local_lists.reported(cp_id, int(result.list_version), now)
            await self.store.save_local_list(charger)
            state["local_list"] = charger.as_dict(entries=False)
        return result

    async def _firmware_request(
        self,
        cp_id: str,
        payload: call.UpdateFirmware | call.GetDiagnostics,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        # recorded before sending: the charger may report progress before its answer is read
        self.require_connection(cp_id)
        sent = to_json_payload(payload)
        location = sent.pop("location")
        kind = type(payload).__name__
        firmware = self.firmware.requested(cp_id, kind, location, sent, self._clock())
        request = firmware.update if kind == "UpdateFirmware" else firmware.diagnostics
        assert request is not None
        await self.store.save_firmware_state(firmware)
        try:
            result = await self._send(cp_id, payload, timeout=timeout)
            request.answer = to_json_payload(result)
            return result
        except Exception as exc:
            self.firmware.unanswered(request, str(exc), self._clock())
            raise
        finally:
            state["firmware"] = firmware.as_dict()
            with trio.CancelScope(shield=True):
                await self.store.save_firmware_state(firmware)

    async def firmware_reported(self, cp_id: str, kind: str, status: str) -> None:
        """A FirmwareStatusNotification (``kind`` firmware) or DiagnosticsStatusNotification
        (``diagnostics``) arrived: record it. Never raises (logs instead)."""
        state = self.firmware.reported(cp_id, kind, status, self._clock())
        try:
            await self.store.save_firmware_state(state)
        except StoreError:
            log.exception("%s: could not record the %s status", cp_id, kind)

    async def reservation_reported(self, cp_id: str, reservation_id: int, status: str) -> None:
        """A 2.0.1 ReservationStatusUpdate (Expired, Removed): record it (persisted).
        Never raises (logs instead)."""
        async with self._lock(cp_id):
            record = self.reservations.station_ended(cp_id, reservation_id, status, self._clock())
            if record is None:
                log.info(
                    "%s: ReservationStatusUpdate for reservation %d not held", cp_id, reservation_id
                )
                return
            try:
                await self.store.save_reservation(record)
            except StoreError:
                log.exception(
                    "%s: could not record reservation %d %s", cp_id, reservation_id, status
                )

    async def _reserve_now(
        self, cp_id: str, payload: call.ReserveNow, timeout: float | None, state: dict[str, Any]
    ) -> Any:
        self.require_connection(cp_id)
        now = self._clock()
        await self.expire_reservations()
        async with self._lock(cp_id):
            record = self.reservations.request(
                cp_id,
                payload.connector_id,
                payload.id_tag,
                parse_time(payload.expiry_date) or now,
                now,
                parent_id_tag=payload.parent_id_tag,
                reservation_id=payload.reservation_id,
            )
            await self.store.save_reservation(record)
        answer: tuple[bool, str] | None = None  # (answered, status or why not)
        try:
            result = await self._send(cp_id, payload, timeout=timeout)
            answer = (True, str(result.status))
            return result
        except Exception as exc:
            answer = (False, str(exc))
            raise
        finally:
            with trio.CancelScope(shield=True):
                async with self._lock(cp_id):
                    if answer is not None and answer[0]:
                        self.reservations.answered(record.reservation_id, answer[1], self._clock())
                    elif answer is not None:
                        self.reservations.unanswered(
                            record.reservation_id, answer[1], self._clock()
                        )
                    await self.store.save_reservation(record)
            state["reservation"] = record.as_dict()

    async def _set_profile(
        self,
        cp_id: str,
        payload: call.SetChargingProfile | call.RemoteStartTransaction,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        if isinstance(payload, call.SetChargingProfile):
            profile, connector, source = (
                payload.cs_charging_profiles,
                payload.connector_id,
                "SetChargingProfile",
            )
        else:
            profile, connector, source = (
                payload.charging_profile,
                payload.connector_id or 0,
                "RemoteStartTransaction",
            )
        if profile is None:  # a RemoteStartTransaction without a profile
            return await self._send(cp_id, payload, timeout=timeout)
        self.require_connection(cp_id)
        running = {
            tx.connector_id: tx.transaction_id
            for tx in self._transactions.active()
            if tx.cp_id == cp_id
        }
        profile_json = to_json_payload(profile)
        tx_id = running.get(connector) if source == "SetChargingProfile" else None
        if profile_json.get("chargingProfilePurpose") != "TxProfile":
            tx_id = None
        async with self._lock(cp_id):
            record = self.profiles.sent(
                cp_id, connector, profile_json, self._clock(), source=source, transaction_id=tx_id
            )
            await self.store.save_charging_profiles([record])
        changed = [record]
        answer: tuple[bool, str] | None = None  # (answered, status or why not)
        try:
            result = await self._send(cp_id, payload, timeout=timeout)
            answer = (True, str(result.status))
            return result
        except Exception as exc:
            answer = (False, str(exc))
            raise
        finally:
            with trio.CancelScope(shield=True):
                async with self._lock(cp_id):
                    if answer is not None and answer[0]:
                        changed = self.profiles.answered(record.record_id, answer[1], self._clock())
                        # a session may have started (or ended) on its connector while the
                        # answer was on its way: bind (or end) the TxProfile now
                        changed += [r for r in self._sweep(cp_id) if r not in changed]
                    elif answer is not None:
                        self.profiles.unanswered(record.record_id, answer[1], self._clock())
                    await self.store.save_charging_profiles(changed or [record])
            state["charging_profile"] = record.as_dict()
            state["replaced"] = [r.as_dict() for r in changed if r is not record]

    async def send_local_list(
        self,
        cp_id: str,
        update_type: str,
        upserts: list[IdTag] | None,
        removals: Sequence[str] = (),
        *,
        list_version: int | None = None,
        update_csms_list: bool = True,
        timeout: float | None = None,
    ) -> tuple[call_result.SendLocalList, ChargerLocalList, LocalListUpdate]:
        """Send one SendLocalList and record it and its answer in :attr:`local_lists`.

        ``update_type`` is Full or Differential; ``upserts`` are the entries to add or
        update, ``removals`` the id tags to remove (Differential only). A Full update with
        ``upserts`` None sends the CSMS's whole list. ``list_version`` defaults to
        :meth:`LocalListBook.next_version`. With ``update_csms_list`` the entries are also
        applied to the CSMS's own list (:attr:`auth`) first. Returns the answer, the
        charger's list state and the update. Raises what :meth:`send` raises (the update
        is then recorded Unanswered) and InvalidTransition for a Full update with removals.
        """
        self.require_connection(cp_id)
        if update_type not in ("Full", "Differential") or (update_type == "Full" and removals):
            raise InvalidTransition(f"a {update_type} update cannot remove entries")
        if update_csms_list:
            for tag in upserts or []:
                await self._upsert_tag(tag)
            for id_tag in removals:
                if self._auth.get(id_tag) is not None:
                    await self._remove_tag(id_tag)
        if upserts is None:
            upserts = list(self._auth) if update_type == "Full" else []
        if list_version is None:
            list_version = self.local_lists.next_version(cp_id, self._auth.version)
        now = self._clock()
        entries = [datatypes.AuthorizationData(t.id_tag, t.info(now)) for t in upserts]
        entries += [datatypes.AuthorizationData(id_tag) for id_tag in removals]
        request = call.SendLocalList(list_version, enums.UpdateType(update_type), entries)
        size = len(json.dumps(to_json_payload(request), separators=(",", ":"))) + 64
        limit = self._config().max_message_size
        if size > limit:  # nothing sent, nothing recorded: say what fits instead
            per = max(1, len(entries) * limit // size // 2)
            raise MessageTooLarge(
                f"SendLocalList of {len(entries)} entries",
                size,
                limit,
                f"send Differential updates of at most {per} entries each",
            )
        update = self.local_lists.sending(
            cp_id, list_version, update_type, upserts, list(removals), now
        )
        charger = self.local_lists.of(cp_id)
        await self.store.save_local_list(charger)
        answer = "no_answer"
        detail: str | None = None
        try:
            result: call_result.SendLocalList = await self._send(
                cp_id,
                request,
                timeout=timeout,
            )
            answer = str(result.status)
            return result, charger, update
        except Exception as exc:
            detail = str(exc)
            raise
        finally:
            self.local_lists.answered(cp_id, update, answer, self._clock(), detail)
            with trio.CancelScope(shield=True):
                await self.store.save_local_list(charger)

    def full_update_offer(self, cp_id: str) -> dict[str, Any]:
        """A send_local_list body that replaces ``cp_id``'s list with the CSMS's whole
        list at a fresh version (what to send after a VersionMismatch)."""
        version = self.local_lists.next_version(cp_id, self._auth.version)
        entries = [
            {
                "id_tag": t.id_tag,
                "id_tag_info": {k: v for k, v in t.as_dict().items() if k != "id_tag"},
            }
            for t in self._auth
        ]
        return {"update_type": "Full", "list_version": version, "local_authorization_list": entries}

    async def expire_reservations(self) -> list[Reservation]:
        """Mark reservations whose expiry date passed Expired (persisted); returns them."""
        expired: list[Reservation] = []
        for cp_id in sorted({r.cp_id for r in self.reservations if r.active}):
            async with self._lock(cp_id):  # not while a start of that charger is booked
                for record in self.reservations.expire(self._clock(), cp_id):
                    await self.store.save_reservation(record)
                    expired.append(record)
        self.reservations.forget_finished(KEEP_FINISHED)
        return expired

    async def sweep_charging_profiles(self) -> list[ChargingProfileRecord]:
        """Bind unbound TxProfiles to the transaction on their connector and mark those
        whose transaction ended Ended (persisted); returns the records changed."""
        changed: list[ChargingProfileRecord] = []
        for cp_id in sorted({r.cp_id for r in self.profiles if r.installed}):
            async with self._lock(cp_id):  # not while an event of that charger is booked
                ended = self._sweep(cp_id)
                if ended:
                    await self.store.save_charging_profiles(ended)
                changed += ended
        self.profiles.forget_finished(KEEP_FINISHED)
        return changed

    def _sweep(self, cp_id: str) -> list[ChargingProfileRecord]:
        """Bind ``cp_id``'s unbound TxProfiles to the session on their connector and end
        those whose session ended (in memory; the caller holds the lock and saves)."""
        running = {
            (tx.cp_id, tx.connector_id): tx.transaction_id
            for tx in self._transactions.active()
            if tx.cp_id == cp_id
        }
        return self.profiles.end_transactions(running, self._clock(), cp_id)

    async def believed_schedule(self, cp_id: str, connector_id: int) -> dict[str, Any]:
        """What the CSMS believes limits ``connector_id`` of ``cp_id`` now: the profiles it
        installed there (and on connector 0) and the resulting limit."""
        await self.sweep_charging_profiles()
        profiles = [
            r for r in self.profiles.installed(cp_id) if r.connector_id in (0, connector_id)
        ]
        limit = limit_at(profiles, self._clock())
        return {
            "connector_id": connector_id,
            "limit": None if limit is None else limit[0],
            "charging_rate_unit": None if limit is None else limit[1],
            "limiting_record_id": None if limit is None else limit[2],
            "installed_profiles": [r.as_dict() for r in profiles],
        }


def tag_of(entry: datatypes.AuthorizationData) -> IdTag:
    """An OCPP local list entry (with idTagInfo) as an :class:`IdTag`."""
    info = entry.id_tag_info
    assert info is not None
    return IdTag(entry.id_tag, str(info.status), parse_time(info.expiry_date), info.parent_id_tag)
