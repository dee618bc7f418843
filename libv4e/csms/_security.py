"""The OCPP 1.6 security extension's books (Security Whitepaper, edition 3): per charger,
its security profile, the security events it reported, the certificates it holds, and the
progress of signed firmware updates and log uploads. Plain state, no I/O; the CSMS persists
each charger's record after every change (:class:`ChargerSecurity` is one JSON document).

Security profiles (whitepaper §2):

====  ==========================================  =====================================
 1    HTTP Basic over ``ws://``                   password (``AuthorizationKey``)
 2    HTTP Basic over ``wss://`` (server TLS)      password + TLS
 3    TLS with a client certificate               certificate whose subject CN is the
                                                  charger id, issued by the charger CA
====  ==========================================  =====================================

A connection below the charger's profile is refused (:func:`admission_problem`): a profile
is never lowered by how a charger connects, only by the operator.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any

from libv4e._errors import CertificateRequestRejected as CertificateRequestRejected
from libv4e._errors import SecurityPolicyError as SecurityPolicyError
from libv4e.csms._books import StatusChange, note
from libv4e.csms._firmware import FirmwareBook, FirmwareRequest
from libv4e.csms._registry import iso

PROFILES = (1, 2, 3)
"""The security profiles of the whitepaper."""

CRITICAL_EVENTS: frozenset[str] = frozenset(
    {
        "FirmwareUpdated",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "MemoryExhaustion",
        "TamperDetectionActivated",
    }
)
"""The security events the whitepaper's table (appendix 1) marks critical; the others it
lists (FailedToAuthenticateAtCentralSystem, CentralSystemFailedToAuthenticate,
ReconfigurationOfSecurityParameters, InvalidMessages, AttemptedReplayAttacks,
InvalidFirmwareSignature, InvalidFirmwareSigningCertificate, InvalidCentralSystemCertificate,
InvalidChargePointCertificate, InvalidTLSVersion, InvalidTLSCipherSuite) and vendor-specific
ones are not."""

MAX_EVENTS = 500
"""Security events kept per charger (the oldest go first): a charger cannot grow its
storage without bound."""
MAX_CERTIFICATES = 64
"""Installed-certificate records kept per charger."""

SIGNED_FIRMWARE_PROGRESS: dict[str, bool] = {
    "Idle": False,
    "Downloading": False,
    "DownloadScheduled": False,
    "Downloaded": False,
    "DownloadPaused": False,
    "InstallScheduled": False,
    "Installing": False,
    "InstallRebooting": False,
    "SignatureVerified": False,
    "Installed": True,
    "DownloadFailed": True,
    "InstallationFailed": True,
    "InstallVerificationFailed": True,
    "InvalidSignature": True,
    "CertificateVerificationFailed": True,
}
"""SignedFirmwareStatusNotification statuses → whether the update is over."""

LOG_PROGRESS: dict[str, bool] = {
    "Idle": False,
    "Uploading": False,
    "Uploaded": True,
    "UploadFailure": True,
    "BadMessage": True,
    "NotSupportedOperation": True,
    "PermissionDenied": True,
}
"""LogStatusNotification statuses → whether the upload is over."""

EXPIRING_DAYS = 30
"""A certificate the charger holds that expires within this many days is ``expiring``."""

AUTHORIZATION_KEY = "AuthorizationKey"
"""The write-only configuration key holding a charger's Basic-auth password."""
REDACTED = "***"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{16,40}\Z")


def is_authorization_key(key: object) -> bool:
    """Whether a configuration key is ``AuthorizationKey`` (keys compare case-insensitively)."""
    return isinstance(key, str) and key.casefold() == AUTHORIZATION_KEY.casefold()


def authorization_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an AuthorizationKey (16–40 printable ASCII characters, no
    space: the whitepaper's passwordString), or None."""
    if not _KEY_PATTERN.match(key):
        return "an AuthorizationKey is 16 to 40 printable ASCII characters without spaces"
    return None


def redact_payload(action: str | None, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """``payload`` with every AuthorizationKey value replaced by ``"***"``, or None when
    there was nothing to hide. Covers ChangeConfiguration (key/value) and
    GetConfiguration answers (configurationKey[].value) — the key is write-only — and
    2.0.1's SecurityCtrlr.BasicAuthPassword (setVariableData[] / getVariableResult[]
    attributeValue, and what a station should never report: NotifyReport's
    reportData[].variableAttribute[].value, NotifyEvent's eventData[].actualValue)."""
    if action == "ChangeConfiguration" and is_authorization_key(payload.get("key")):
        if "value" in payload:
            return {**payload, "value": REDACTED}
        return None
    for name in ("setVariableData", "getVariableResult"):
        items = payload.get(name)
        if isinstance(items, list) and any(_basic_auth_password(e) for e in items):
            return {
                **payload,
                name: [
                    {**e, "attributeValue": REDACTED} if _basic_auth_password(e) else e
                    for e in items
                ],
            }
    reported = _redact_reported(payload)
    if reported is not None:
        return reported
    entries = payload.get("configurationKey")
    if isinstance(entries, list) and any(
        isinstance(e, dict) and is_authorization_key(e.get("key")) and "value" in e for e in entries
    ):
        return {
            **payload,
            "configurationKey": [
                {**e, "value": REDACTED}
                if isinstance(e, dict) and is_authorization_key(e.get("key")) and "value" in e
                else e
                for e in entries
            ],
        }
    return None


def _redact_reported(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """NotifyReport / NotifyEvent with SecurityCtrlr.BasicAuthPassword's reported value
    hidden (write-only: a station should not report it), or None."""
    report, events = payload.get("reportData"), payload.get("eventData")
    if isinstance(report, list) and any(_basic_auth_password(e, None) for e in report):
        return {
            **payload,
            "reportData": [
                {
                    **e,
                    "variableAttribute": [
                        {**a, "value": REDACTED} if isinstance(a, dict) and "value" in a else a
                        for a in e.get("variableAttribute") or ()
                    ],
                }
                if _basic_auth_password(e, None) and isinstance(e.get("variableAttribute"), list)
                else e
                for e in report
            ],
        }
    if isinstance(events, list) and any(_basic_auth_password(e, "actualValue") for e in events):
        return {
            **payload,
            "eventData": [
                {**e, "actualValue": REDACTED} if _basic_auth_password(e, "actualValue") else e
                for e in events
            ],
        }
    return None


def _basic_auth_password(entry: object, field: str | None = "attributeValue") -> bool:
    """Whether a 2.0.1 entry naming a component and variable is SecurityCtrlr.
    BasicAuthPassword (the AuthorizationKey) and carries ``field`` (None: any)."""
    if not isinstance(entry, dict) or (field is not None and field not in entry):
        return False
    component, variable = entry.get("component"), entry.get("variable")
    return (
        isinstance(component, dict)
        and isinstance(variable, dict)
        and str(component.get("name")).casefold() == "securityctrlr"
        and str(variable.get("name")).casefold() == "basicauthpassword"
    )


@dataclasses.dataclass(slots=True)
class SecurityEvent:
    """One SecurityEventNotification."""

    type: str
    timestamp: str
    """The charger's time, as it sent it."""
    received_at: dt.datetime
    tech_info: str | None = None
    critical: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "type": self.type,
            "timestamp": self.timestamp,
            "received_at": iso(self.received_at),
            "tech_info": self.tech_info,
            "critical": self.critical,
        }


@dataclasses.dataclass(slots=True)
class CertificateRecord:
    """A certificate the charger holds, as far as the CSMS knows: what it signed for the
    charger (ChargePointCertificate), installed on it (InstallCertificate) or saw in a
    GetInstalledCertificateIds answer."""

    certificate_type: str
    """ChargePointCertificate, CentralSystemRootCertificate or ManufacturerRootCertificate."""
    hash_data: dict[str, str] | None = None
    """CertificateHashData (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber)."""
    subject: str | None = None
    not_after: dt.datetime | None = None
    status: str = "Pending"
    """Pending (sent, not answered), Accepted, Rejected, Failed, Installed, Deleted,
    Reported (seen in a GetInstalledCertificateIds answer)."""
    updated_at: dt.datetime | None = None

    @property
    def serial_number(self) -> str | None:
        """The certificate's serial number (hex), when known."""
        return None if self.hash_data is None else self.hash_data.get("serialNumber")

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """A JSON-ready dict (with ``expires_in_days`` when ``now`` is given)."""
        out: dict[str, Any] = {
            "certificate_type": self.certificate_type,
            "hash_data": self.hash_data,
            "subject": self.subject,
            "not_after": _iso(self.not_after),
            "status": self.status,
            "updated_at": _iso(self.updated_at),
        }
        if now is not None and self.not_after is not None:
            days = (self.not_after - now).total_seconds() / 86400
            out["expires_in_days"] = round(days, 1)
            out["expiring"] = self.status in ("Accepted", "Installed") and days < EXPIRING_DAYS
        return out


@dataclasses.dataclass(slots=True)
class ChargerSecurity:
    """The CSMS's security view of one charger."""

    cp_id: str
    profile: int = 1
    certificates: list[CertificateRecord] = dataclasses.field(default_factory=list)
    signed_update: FirmwareRequest | None = None
    """The last SignedUpdateFirmware sent."""
    log_request: FirmwareRequest | None = None
    """The last GetLog sent."""
    firmware_status: str | None = None
    log_status: str | None = None
    key_rotated_at: dt.datetime | None = None

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """A JSON-ready dict (the whole record, as stored)."""
        return {
            "cp_id": self.cp_id,
            "profile": self.profile,
            "certificates": [c.as_dict(now) for c in self.certificates],
            "signed_update": None if self.signed_update is None else self.signed_update.as_dict(),
            "log_request": None if self.log_request is None else self.log_request.as_dict(),
            "firmware_status": self.firmware_status,
            "log_status": self.log_status,
            "key_rotated_at": _iso(self.key_rotated_at),
        }

    def summary(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """The record for charger views (security events are stored apart: append-only
        rows, so that nodes writing them never overwrite each other)."""
        return self.as_dict(now)


class SecurityBook:
    """Every charger's security record."""

    def __init__(self) -> None:
        self._chargers: dict[str, ChargerSecurity] = {}
        self._next_request_id = 1

    def __iter__(self) -> Iterator[ChargerSecurity]:
        return iter(sorted(self._chargers.values(), key=lambda s: s.cp_id))

    def load(self, states: list[ChargerSecurity]) -> None:
        """Replace the book's content (e.g. from a store)."""
        self._chargers = {s.cp_id: s for s in states}
        ids = [
            r.request_id or 0
            for s in states
            for r in (s.signed_update, s.log_request)
            if r is not None
        ]
        self._next_request_id = max(ids, default=0) + 1

    def get(self, cp_id: str) -> ChargerSecurity | None:
        """One charger's record, if it has one."""
        return self._chargers.get(cp_id)

    def of(self, cp_id: str) -> ChargerSecurity:
        """One charger's record (created at profile 1 when unknown)."""
        state = self._chargers.get(cp_id)
        if state is None:
            state = self._chargers[cp_id] = ChargerSecurity(cp_id)
        return state

    def profile(self, cp_id: str) -> int:
        """The charger's security profile (1 when never set)."""
        state = self._chargers.get(cp_id)
        return 1 if state is None else state.profile

    def set_profile(self, cp_id: str, profile: int) -> ChargerSecurity:
        """Set the charger's profile (1, 2 or 3); ValueError otherwise."""
        if profile not in PROFILES:
            raise ValueError(f"a security profile is 1, 2 or 3, not {profile!r}")
        state = self.of(cp_id)
        state.profile = profile
        return state

    @staticmethod
    def event(type_: str, timestamp: str, tech_info: str | None, now: dt.datetime) -> SecurityEvent:
        """A SecurityEventNotification as the record the store appends."""
        return SecurityEvent(type_, timestamp, now, tech_info, type_ in CRITICAL_EVENTS)

    def merge(self, state: ChargerSecurity) -> None:
        """Take a charger's record as stored (another node may have written it)."""
        self._chargers[state.cp_id] = state
        ids = [r.request_id or 0 for r in (state.signed_update, state.log_request) if r]
        self._next_request_id = max([self._next_request_id, *(i + 1 for i in ids)])

    def certificate(
        self, cp_id: str, record: CertificateRecord
    ) -> tuple[ChargerSecurity, CertificateRecord]:
        """Add (or, same type and serial number, replace) a certificate record."""
        state = self.of(cp_id)
        serial = record.serial_number
        for i, old in enumerate(state.certificates):
            if serial is not None and (old.certificate_type, old.serial_number) == (
                record.certificate_type,
                serial,
            ):
                state.certificates[i] = record
                return state, record
        state.certificates.append(record)
        if len(state.certificates) > MAX_CERTIFICATES:
            del state.certificates[: len(state.certificates) - MAX_CERTIFICATES]
        return state, record

    def reported_ids(
        self, cp_id: str, certificate_type: str, hashes: list[dict[str, str]], now: dt.datetime
    ) -> ChargerSecurity:
        """A GetInstalledCertificateIds answer: the charger holds exactly ``hashes`` of
        ``certificate_type``; records of that type it no longer lists become Deleted."""
        state = self.of(cp_id)
        serials = {h.get("serialNumber") for h in hashes}
        for record in state.certificates:
            if (
                record.certificate_type == certificate_type
                and record.status in ("Installed", "Accepted", "Reported")
                and record.serial_number not in serials
            ):
                record.status, record.updated_at = "Deleted", now
        known = {
            (r.certificate_type, r.serial_number)
            for r in state.certificates
            if r.status != "Deleted"
        }
        for h in hashes:
            if (certificate_type, h.get("serialNumber")) not in known:
                self.certificate(
                    cp_id, CertificateRecord(certificate_type, dict(h), None, None, "Reported", now)
                )
        return state

    def deleted(self, cp_id: str, hash_data: Mapping[str, str], now: dt.datetime) -> bool:
        """A DeleteCertificate was Accepted: mark the matching record Deleted."""
        state = self.of(cp_id)
        found = False
        for record in state.certificates:
            if record.hash_data is not None and all(
                record.hash_data.get(k) == v for k, v in hash_data.items()
            ):
                record.status, record.updated_at, found = "Deleted", now, True
        return found

    def next_request_id(self) -> int:
        """A requestId for the next SignedUpdateFirmware or GetLog — and for the 2.0.1
        calls a 1.6 command becomes (a GetDiagnostics' GetLog, an UpdateFirmware, a
        RequestStartTransaction's remoteStartId): one series, so a status notification
        never moves another request's record."""
        request_id = self._next_request_id
        self._next_request_id += 1
        return request_id

    def requested(
        self,
        cp_id: str,
        kind: str,
        request_id: int,
        parameters: dict[str, Any],
        now: dt.datetime,
    ) -> tuple[ChargerSecurity, FirmwareRequest]:
        """Record a SignedUpdateFirmware or GetLog about to be sent."""
        location = str(
            parameters.get("firmware", {}).get("location")
            or parameters.get("log", {}).get("remoteLocation")
            or ""
        )
        request = FirmwareRequest(kind, location, now, parameters, request_id=request_id)
        note(request.history, StatusChange(now, "Requested", f"{kind} sent"))
        state = self.of(cp_id)
        if kind == "SignedUpdateFirmware":
            state.signed_update = request
        else:
            state.log_request = request
        return state, request

    unanswered = staticmethod(FirmwareBook.unanswered)

    def reported(
        self, cp_id: str, kind: str, status: str, request_id: int | None, now: dt.datetime
    ) -> ChargerSecurity:
        """A SignedFirmwareStatusNotification (``kind`` firmware) or LogStatusNotification
        (``log``); it moves the request with its requestId (or, without one, the last
        request), never another."""
        state = self.of(cp_id)
        if kind == "firmware":
            state.firmware_status = status
            request, final = state.signed_update, SIGNED_FIRMWARE_PROGRESS.get(status, False)
        else:
            state.log_status = status
            request, final = state.log_request, LOG_PROGRESS.get(status, False)
        if (
            request is not None
            and not request.done
            and status != "Idle"
            and (request_id is None or request_id == request.request_id)
        ):
            request.status, request.done = status, final
            note(request.history, StatusChange(now, status))
        return state


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(value)
