"""The configuration of a :class:`~libv4e.csms.CentralSystem`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from libv4e.csms._auth import UnknownTagPolicy
from libv4e.csms._throttle import ThrottlePolicy
from libv4e.protocol._time import utcnow as utcnow
from libv4e.protocol._validation import STRICT, ValidationPolicy
from libv4e.transport._connection import DEFAULT_CALL_TIMEOUT
from libv4e.transport._flow import FlowControl
from libv4e.transport._websocket import DEFAULT_MAX_MESSAGE_SIZE

KEEP_FINISHED = 500
"""Finished transactions (and operator-book records) kept in memory, for late retries;
all are stored."""


@dataclasses.dataclass(frozen=True)
class CsmsConfig:
    """Behaviour of a :class:`CentralSystem` (every field has a safe default)."""

    heartbeat_interval: int = 30
    """Seconds, sent in BootNotification.conf."""
    allowed_ids: frozenset[str] | None = None
    """If set, only these charge point ids may connect (others: HTTP 404 at the
    handshake, or BootNotification Rejected if they got through another way)."""
    unknown_tags: UnknownTagPolicy = UnknownTagPolicy.ACCEPT
    offline_tolerance: float = 2.0
    """A charger silent for longer than heartbeat_interval × this is shown offline."""
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    """Default seconds to wait for a charger's answer to a command."""
    lenient_actions: frozenset[str] = frozenset()
    """Inbound actions whose payload quirks are repaired rather than refused, for all."""
    lenient_chargers: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    """Per charge point id: extra lenient actions (``"*"`` for all)."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ping_interval: float | None = 60.0
    """Websocket ping period to detect half-open sockets (None: off)."""
    log_flush_interval: float = 0.2
    """Seconds between batched writes of the message log."""
    allowed_origins: frozenset[str] = frozenset()
    """Browser origins allowed to open a charger websocket. Chargers send no ``Origin``
    header; a handshake carrying one from any other origin is refused (403): otherwise
    any web page a user opens could connect as a charger (and, without passwords, take
    an offline charger's id)."""
    require_password: bool = False
    """Security Profile 1/2: every charger must present its HTTP Basic password. When
    False, only chargers that have a password set must present it."""
    max_connector_power_w: float = 400_000.0
    """Energy above this power over a session's duration is flagged implausible."""
    reconcile_grace: float = 300.0
    """Seconds a session stays open, unconfirmed, after its charger rebooted (or after
    its StartTransaction answer was lost) before the CSMS closes it itself."""
    transaction_id_block: int = 32
    """Transaction ids reserved in the store at a time (never reused after a crash)."""
    max_connectors: int | None = 64
    """The highest connectorId a charger may use (StatusNotification, MeterValues,
    StartTransaction…); above it: CALLERROR PropertyConstraintViolation, nothing created
    (None: no limit)."""
    max_connections_per_address: int | None = 10_000
    """Open charger connections from one remote address (a site behind NAT has many;
    a client opening thousands starves everyone's file descriptors): beyond, the
    handshake is refused with 503 (None: no limit)."""
    max_unbooted_per_address: int | None = 1024
    """Connections from one address whose charger has no accepted BootNotification yet
    (junk sessions never boot): beyond, the handshake is refused with 503."""
    boot_deadline: float | None = 300.0
    """Seconds a connection may stay open without an accepted BootNotification (a charger
    boots at once); then it is closed with 1008 (None: no deadline)."""
    flow: FlowControl = dataclasses.field(default_factory=FlowControl)
    """Limits on inbound calls: backlog per connection; rate and burst per charger id,
    kept across reconnects (reconnecting does not refill the budget; see _flow)."""
    address_flow: FlowControl | None = dataclasses.field(
        default_factory=lambda: FlowControl(rate=2_000.0, burst=20_000)
    )
    """Rate and burst of inbound calls from one remote address, all its chargers together,
    kept across reconnects (a site behind NAT shares it). Loopback addresses are exempt
    (local simulators and tests) unless ``address_flow_loopback``. None: no address
    budget."""
    address_flow_loopback: bool = False
    """Apply ``address_flow`` to loopback addresses too."""
    log_max_rows: int | None = 1_000_000
    """Message-log retention: the newest this many messages are kept (None: no limit)."""
    log_max_rows_per_charger: int | None = 20_000
    """Message-log retention per charger: no charger keeps more than this many; when
    ``log_max_rows`` is reached the chargers that logged most are trimmed first, so one
    charger cannot evict another's diagnosis evidence (None: only the total counts)."""
    log_max_age: float | None = 30 * 86400.0
    """Message-log retention: messages older than this many seconds are deleted."""
    log_prune_interval: float = 60.0
    """Seconds between two retention passes over the message log (and meter values)."""
    meter_max_per_transaction: int | None = 10_000
    """Meter-value retention: the newest this many MeterValues messages of a transaction
    are kept (at one a minute, a week of samples; None: no limit)."""
    meter_max_untied: int | None = 1_000
    """Meter-value retention: the newest this many MeterValues messages without a
    transaction are kept per charger (None: no limit)."""
    meter_max_age: float | None = 365 * 86400.0
    """Meter-value retention: values stored longer ago than this many seconds are
    deleted (None: kept)."""
    auth_throttle: ThrottlePolicy = dataclasses.field(default_factory=ThrottlePolicy)
    """Failed-password throttling per charge point id and per address (see _throttle)."""
    duplicate_probe_timeout: float = 5.0
    """A second connection with the id of a connected charger that has no password: the
    first is pinged; if it answers within this many seconds the newcomer is refused
    (HTTP 409), else the first is closed and the newcomer admitted (docs/security.md)."""
    authorization_key_grace: float = 300.0
    """Seconds a charger's previous password stays valid after an AuthorizationKey
    rotation it Accepted (its reconnect window; security extension)."""
    charger_certificate_days: int = 365
    """Validity of the charger certificates the CSMS's CA signs (SignCertificate)."""
    transport: str | None = None
    """Websocket server transport, one of ``TRANSPORTS`` (None: ``DEFAULT_TRANSPORT``,
    the lean wsproto one)."""
    ocpp_versions: tuple[str, ...] = ("ocpp2.0.1", "ocpp1.6")
    """The websocket subprotocols served, in the order of preference: a charger offering
    several gets the first of these it offered (``("ocpp1.6",)``: 1.6 only)."""

    def policy_for(self, cp_id: str) -> ValidationPolicy:
        """The validation policy of one charger."""
        actions = self.lenient_actions | self.lenient_chargers.get(cp_id, frozenset())
        return ValidationPolicy(lenient_actions=actions) if actions else STRICT
