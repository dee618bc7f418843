"""The driver's lines of a diagnosis, as keys: every ``say`` (a finding, a pending check,
the healthy or resolved verdict) is a :class:`Line`, a :class:`Say` key and the connector
it is about. The apps hold the words (in every language they speak, with the site's
spoken names) and the lines to say while taking an action."""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["Line", "Say"]


class Say(enum.StrEnum):
    """The keys of the driver's lines; a pending or healthy line is also the key of the
    agent's note, made of the facts listed at it."""

    # findings
    OFFLINE_DISCONNECTED = "offline.disconnected"
    OFFLINE_SILENT = "offline.silent"
    STUCK_CONNECTOR = "stuck_connector"
    CONNECTOR_UNAVAILABLE = "connector_unavailable"
    RESERVED = "reserved"
    FAULT_HIGH_TEMPERATURE = "fault.HighTemperature"
    FAULT_OVER_CURRENT = "fault.OverCurrentFailure"
    FAULT_VOLTAGE = "fault.voltage"
    FAULT_GROUND = "fault.GroundFailure"
    FAULT_POWER_METER = "fault.PowerMeterFailure"
    FAULT_EV_COMMUNICATION = "fault.EVCommunicationError"
    FAULT_READER = "fault.ReaderFailure"
    FAULT_GENERIC = "fault.generic"
    SESSION_START_FAILURE = "session_start_failure"
    SLOW_CHARGING = "slow_charging"
    AUTH_BLOCKED = "auth.blocked"
    AUTH_STALE_LIST = "auth.stale_list"
    # pending: verification moments
    PENDING_RESTARTED = "pending.restarted"
    """``since`` (the boot)."""
    PENDING_QUIET_MOMENT = "pending.quiet_moment"
    """``silence_s``, ``heartbeat_interval_s``, ``wait_s``."""
    PENDING_QUIET_PROBE = "pending.quiet_probe"
    """``since``, ``window_reason``."""
    PENDING_ENERGY = "pending.energy"
    PENDING_START_WAIT = "pending.start_wait"
    """``waited_s``, ``wait_s``."""
    PENDING_FIRST_READING = "pending.first_reading"
    """``since``."""
    PENDING_BELOW_FULL = "pending.below_full"
    """``power_w``, ``offered_w``, ``normal_ratio``."""
    PENDING_ESCALATE = "pending.escalate"
    """``starts`` (accepted, no session), ``since``."""
    PENDING_TRY_START = "pending.try_start"
    """``since``, ``window_reason``, ``id_tag`` (None: to ask for)."""
    # healthy and resolution moments
    HEALTHY = "healthy"
    """``since``, as the charging / card / back-online lines."""
    RESOLVED_UNLOCKED = "resolved.unlocked"
    """``connector_id``, as the leave line."""
    RESOLVED_LEAVE = "resolved.leave"
    RESOLVED_CHARGING = "resolved.charging"
    RESOLVED_CARD = "resolved.card"
    RESOLVED_BACK_ONLINE = "resolved.back_online"
    RESOLVED_FULL_SPEED = "resolved.full_speed"


@dataclasses.dataclass(frozen=True)
class Line:
    """One line for the driver: its key (a :class:`Say`; an app may add keys of its own)
    and the connector it is about (None: the whole charger)."""

    key: str
    connector_id: int | None = None
