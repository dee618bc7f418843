"""Charging sessions: choosing a connector, authorizing an id tag the way a 1.6 charger
does (local list, cache, offline rules), StartTransaction, StopTransaction, unplugging."""

from __future__ import annotations

import logging

import trio
from ocpp.v16 import call, call_result, enums

from libv4e._errors import CallTimeoutError, ConnectionLostError, RemoteCallError
from libv4e.charger._base import ChargerState, OutboxItem
from libv4e.charger._link import Link
from libv4e.charger._metering import Metering
from libv4e.charger._model import ChargePointStatus, ChargingSession, Connector, ConnectorEvent
from libv4e.charger._outbox import Outbox, StatusBoard

log = logging.getLogger("libv4e.charger")


class Sessions:
    """Sessions: authorize, begin, end, unplug."""

    def __init__(
        self,
        state: ChargerState,
        *,
        outbox: Outbox,
        board: StatusBoard,
        metering: Metering,
        link: Link,
    ) -> None:
        self._state = state
        self._outbox = outbox
        self._board = board
        self._metering = metering
        self._link = link

    def free_connector(
        self, wanted: int | None, *, id_tag: str | None = None, claimed: int | None = None
    ) -> Connector | None:
        """The connector to use for a new session (``wanted``, or the first free one).

        A connector promised to an accepted RemoteStartTransaction is not free (except
        to that request: ``claimed``), nor is one waiting for a Scheduled Inoperative; a
        Reserved one is free only for its reservation's ``id_tag`` (when given)."""
        candidates = [wanted] if wanted else [i for i in self._state.connectors if i]
        for i in candidates:
            c = self._state.connectors.get(i)
            if (
                c is not None
                and i
                and i not in self._state.sessions
                and (i not in self._state.starting or i == claimed)
                and c.status
                in (
                    ChargePointStatus.available,
                    ChargePointStatus.preparing,
                    ChargePointStatus.reserved,
                    ChargePointStatus.finishing,
                )
                and not c.inoperative
                and not c.pending_availability
                and not (
                    c.status is ChargePointStatus.reserved
                    and id_tag is not None
                    and c.reservation_tag not in (None, id_tag)
                )
            ):
                return c
        return None

    async def authorize(
        self, id_tag: str, *, remote: bool, connector_id: int | None = None
    ) -> bool:
        """Decide whether ``id_tag`` may charge, the way a 1.6 charger does (at
        ``connector_id``, where a refusal is reported)."""
        if remote and not self._state.configuration.flag("AuthorizeRemoteTxRequests"):
            return True
        local = (
            self._state.auth.lookup(id_tag)
            if self._state.configuration.flag("LocalAuthListEnabled")
            else None
        )
        stale = self._state.faults.auth_failure(id_tag)
        if local is not None and self._state.configuration.flag("LocalPreAuthorize") and not stale:
            if local.status == enums.AuthorizationStatus.accepted:
                return True
        if not self._link.online or self._link.conn is None:
            if local is not None and self._state.configuration.flag("LocalAuthorizeOffline"):
                return bool(local.status == enums.AuthorizationStatus.accepted)
            return self._state.configuration.flag("AllowOfflineTxForUnknownId")
        try:
            result = await self._link.conn.call(
                call.Authorize(id_tag), timeout=self._state.config.call_timeout
            )
        except (CallTimeoutError, RemoteCallError, ConnectionLostError):
            return local is not None and local.status == enums.AuthorizationStatus.accepted
        info = result.id_tag_info
        if self._state.configuration.flag("AuthorizationCacheEnabled"):
            self._state.auth.remember(id_tag, info)
        if stale is not None:
            # the fault: a corrupted local list that disagrees with the CSMS, and wins
            if info.status == enums.AuthorizationStatus.accepted:
                # reported on the connector the card was used at
                connector = self._state.connectors[connector_id if connector_id else stale]
                connector.set_error(
                    enums.ChargePointErrorCode.local_list_conflict,
                    f"idTag {id_tag} is Invalid in the local list",
                )
                self._board.notify(connector)
                connector.set_error(enums.ChargePointErrorCode.no_error)
            return False
        return bool(info.status == enums.AuthorizationStatus.accepted)

    async def swipe(self, connector_id: int, id_tag: str) -> bool:
        """A driver presents ``id_tag`` at ``connector_id`` and plugs in: charge if allowed."""
        return await self.begin_session(connector_id, id_tag, remote=False)

    async def begin_session(
        self, connector_id: int | None, id_tag: str, *, remote: bool, claimed: bool = False
    ) -> bool:
        """Authorize, plug in, StartTransaction, charge. Returns whether charging started.
        ``claimed``: the connector was promised to this session (RemoteStartTransaction)."""
        connector = self.free_connector(
            connector_id, id_tag=id_tag, claimed=connector_id if claimed else None
        )
        if connector is None:
            return False
        if self._state.faults.session_start_failure(connector.connector_id):
            log.info("%s: fault: start request for %s ignored", self._state.cp_id, id_tag)
            return False
        if not await self.authorize(id_tag, remote=remote, connector_id=connector.connector_id):
            log.info("%s: %s not authorized", self._state.cp_id, id_tag)
            return False
        if remote and not self._state.config.virtual_car and not connector.plugged:
            if not await self._wait_for_cable(connector):
                log.info(
                    "%s: no cable on connector %s: start abandoned", self._state.cp_id, connector_id
                )
                return False
        if connector.connector_id in self._state.sessions:
            return False
        cid = connector.connector_id
        # the reservation this session uses (taken before plugging in leaves Reserved)
        reservation = (
            connector.reservation_id if connector.status is ChargePointStatus.reserved else None
        )
        if connector.status is not ChargePointStatus.preparing:
            connector.plugged = True
            self._board.move(connector, ConnectorEvent.PLUG_IN)
        connector.locked = True
        meter = self._metering.update_meter(cid)
        session = ChargingSession(
            cid,
            id_tag,
            round(meter.energy_wh),
            self._state.now(),
            local_id=next(self._state.local_ids),
        )
        connector.reservation_id = None
        self._state.sessions[cid] = session
        self._state.session_started[cid] = trio.current_time()
        self._state.energy_at[cid] = session.started_at

        def started(result: call_result.StartTransaction) -> None:
            session.transaction_id = result.transaction_id
            self._state.persist()
            if (
                result.id_tag_info.status != enums.AuthorizationStatus.accepted
                and self._state.configuration.flag("StopTransactionOnInvalidId")
                and self._state.sessions.get(cid) is session
            ):
                self.end_session(cid, enums.Reason.de_authorized)

        self._outbox.send(
            OutboxItem(
                lambda: call.StartTransaction(
                    cid, id_tag, session.meter_start, session.started_at, reservation
                ),
                session=session,
                on_result=started,
            )
        )
        self._board.move(connector, ConnectorEvent.START)
        self._metering.update_meter(cid)
        self._metering.send_meter_values(cid, enums.ReadingContext.transaction_begin)
        self._state.persist()
        return True

    def end_session(self, connector_id: int, reason: enums.Reason) -> ChargingSession | None:
        """Stop the transaction on ``connector_id`` with ``reason`` (StopTransaction)."""
        session = self._state.sessions.get(connector_id)
        if session is None:
            return None
        meter = self._metering.update_meter(connector_id)
        end = meter.sample(
            self._state.now(),
            ["Energy.Active.Import.Register"],
            offered_w=self._metering.offered_w(connector_id),
            context=enums.ReadingContext.transaction_end,
        )
        del self._state.sessions[connector_id]
        self._state.session_started.pop(connector_id, None)
        meter.power_w = 0.0
        stop = round(meter.energy_wh)
        session.stop_reason = str(reason)
        self._outbox.send(
            OutboxItem(
                lambda: call.StopTransaction(
                    stop,
                    end.timestamp,
                    session.transaction_id or 0,
                    reason=reason,
                    id_tag=session.id_tag,
                    transaction_data=[end],
                ),
                session=session,
            )
        )
        connector = self._state.connectors[connector_id]
        self._state.profiles[connector_id] = [
            p
            for p in self._state.profiles[connector_id]
            if p.charging_profile_purpose != enums.ChargingProfilePurposeType.tx_profile
        ]
        self._board.move(connector, ConnectorEvent.STOP)
        if self._state.faults.stuck_connector(connector_id):
            connector.set_error(
                enums.ChargePointErrorCode.connector_lock_failure, "connector lock did not release"
            )
            self._board.move(connector, ConnectorEvent.FAULT)
        elif reason in (enums.Reason.soft_reset, enums.Reason.hard_reset, enums.Reason.reboot):
            pass  # the cable stays in across a reboot; the connector reports after boot
        elif self._link.nursery is not None and self._state.config.unplug_delay is not None:
            self._link.nursery.start_soon(self._unplug_later, connector_id)
        self._board.apply_scheduled_availability(connector)
        self._state.persist()
        return session

    async def _wait_for_cable(self, connector: Connector) -> bool:
        """A remote start with no cable in: wait ``ConnectionTimeOut`` seconds for the
        driver to plug in (OCPP 1.6 §5.11, the connection timeout)."""
        with trio.move_on_after(self._state.configuration.int("ConnectionTimeOut")):
            while not connector.plugged:  # noqa: ASYNC110 - set by the driver, no event
                await trio.sleep(0.25)
        return connector.plugged

    async def _unplug_later(self, connector_id: int) -> None:
        await trio.sleep(self._state.config.unplug_delay or 0.0)
        connector = self._state.connectors[connector_id]
        if (
            connector_id not in self._state.sessions
            and connector.status is ChargePointStatus.finishing
        ):
            self.unplug(connector_id)

    def unplug(self, connector_id: int) -> None:
        """The driver takes the cable out."""
        connector = self._state.connectors[connector_id]
        if connector_id in self._state.sessions:
            reason = enums.Reason.ev_disconnected
            if self._state.configuration.flag("StopTransactionOnEVSideDisconnect"):
                self.end_session(connector_id, reason)
        connector.plugged = connector.locked = False
        self._board.move(connector, ConnectorEvent.UNPLUG)
        if connector.inoperative and connector.can(ConnectorEvent.INOPERATIVE):
            self._board.move(connector, ConnectorEvent.INOPERATIVE)
