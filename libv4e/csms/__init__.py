"""The central system: its books (registry, authorization list, transactions), the
OCPP handlers that keep them, and the store they are written to."""

from libv4e._errors import ChargerConnectedError as ChargerConnectedError
from libv4e._errors import MessageTooLarge as MessageTooLarge
from libv4e._errors import UnknownChargerError as UnknownChargerError
from libv4e._errors import UnknownTagError as UnknownTagError
from libv4e._errors import UnsupportedCommandError as UnsupportedCommandError

from ._auth import AuthorizationList as AuthorizationList
from ._auth import IdTag as IdTag
from ._auth import UnknownTagPolicy as UnknownTagPolicy
from ._books import InvalidTransition as InvalidTransition
from ._ca import CertificateAuthority as CertificateAuthority
from ._central import CentralSystem as CentralSystem
from ._central import CsmsConfig as CsmsConfig
from ._cluster import ClusterNode as ClusterNode
from ._clusterbase import ClusterConfig as ClusterConfig
from ._events import EVENT_KINDS as EVENT_KINDS
from ._events import AgentEvent as AgentEvent
from ._events import AgentEventFeed as AgentEventFeed
from ._events import charger_link as charger_link
from ._history import MeterHistory as MeterHistory
from ._names import MAX_ALIAS_CHARS as MAX_ALIAS_CHARS
from ._names import MAX_ALIAS_WORDS as MAX_ALIAS_WORDS
from ._names import SpokenNames as SpokenNames
from ._operator import Operator as Operator
from ._operator import Outcome as Outcome
from ._pgstore import PostgresStore as PostgresStore
from ._pgstore import is_postgres_url as is_postgres_url
from ._pgstore import store_for as store_for
from ._profiles import ProfileStatus as ProfileStatus
from ._registry import ChargePointState as ChargePointState
from ._registry import ConnectorState as ConnectorState
from ._registry import MeterReading as MeterReading
from ._registry import Registry as Registry
from ._registry import Transaction as Transaction
from ._registry import energy_register_wh as energy_register_wh
from ._registry import read_meter_values as read_meter_values
from ._reservations import ReservationConflictError as ReservationConflictError
from ._reservations import ReservationStatus as ReservationStatus
from ._security import CRITICAL_EVENTS as CRITICAL_EVENTS
from ._security import CertificateRequestRejected as CertificateRequestRejected
from ._security import ChargerSecurity as ChargerSecurity
from ._security import SecurityBook as SecurityBook
from ._security import SecurityPolicyError as SecurityPolicyError
from ._security import redact_payload as redact_payload
from ._securitycenter import SecurityCenter as SecurityCenter
from ._sql import SqlStore as SqlStore
from ._sqlite import SqliteStore as SqliteStore
from ._sqlschema import ColumnType as ColumnType
from ._sqlschema import Sql as Sql
from ._sqlschema import Table as Table
from ._store import ChargerStore as ChargerStore
from ._store import MessageStore as MessageStore
from ._store import OperatorBooksStore as OperatorBooksStore
from ._store import SecurityStore as SecurityStore
from ._store import Store as Store
from ._store import TagStore as TagStore
from ._store import TransactionStore as TransactionStore
from ._throttle import ThrottlePolicy as ThrottlePolicy
from ._txbook import Change as Change
from ._txbook import NoIdsAvailable as NoIdsAvailable
from ._txbook import TransactionBook as TransactionBook
from ._txbook import UnmatchedStop as UnmatchedStop
from ._webhooks import Delivery as Delivery
from ._webhooks import WebhookBook as WebhookBook
from ._webhooks import WebhookPolicy as WebhookPolicy
from ._webhooks import WebhookSubscription as WebhookSubscription
from ._webhooks import sign_webhook as sign_webhook
from ._webhooks import verify_webhook as verify_webhook

__all__ = [
    "CRITICAL_EVENTS",
    "EVENT_KINDS",
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_WORDS",
    "AgentEvent",
    "AgentEventFeed",
    "AuthorizationList",
    "CentralSystem",
    "CertificateAuthority",
    "CertificateRequestRejected",
    "Change",
    "ChargePointState",
    "ChargerConnectedError",
    "ChargerSecurity",
    "ChargerStore",
    "ClusterConfig",
    "ClusterNode",
    "ColumnType",
    "ConnectorState",
    "CsmsConfig",
    "Delivery",
    "IdTag",
    "InvalidTransition",
    "MessageStore",
    "MessageTooLarge",
    "MeterHistory",
    "MeterReading",
    "NoIdsAvailable",
    "Operator",
    "OperatorBooksStore",
    "Outcome",
    "PostgresStore",
    "ProfileStatus",
    "Registry",
    "ReservationConflictError",
    "ReservationStatus",
    "SecurityBook",
    "SecurityCenter",
    "SecurityPolicyError",
    "SecurityStore",
    "SpokenNames",
    "Sql",
    "SqlStore",
    "SqliteStore",
    "Store",
    "Table",
    "TagStore",
    "ThrottlePolicy",
    "Transaction",
    "TransactionBook",
    "TransactionStore",
    "UnknownChargerError",
    "UnknownTagError",
    "UnknownTagPolicy",
    "UnmatchedStop",
    "UnsupportedCommandError",
    "WebhookBook",
    "WebhookPolicy",
    "WebhookSubscription",
    "charger_link",
    "energy_register_wh",
    "is_postgres_url",
    "read_meter_values",
    "redact_payload",
    "sign_webhook",
    "store_for",
    "verify_webhook",
]
