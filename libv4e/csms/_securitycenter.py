"""The CSMS's security-extension component: it answers the charger's security calls
(SecurityEventNotification, SignCertificate, SignedFirmwareStatusNotification,
LogStatusNotification), records what the security commands change (InstallCertificate,
DeleteCertificate, GetInstalledCertificateIds, SignedUpdateFirmware, GetLog,
ExtendedTriggerMessage, ChangeConfiguration of SecurityProfile and AuthorizationKey), keeps
each charger's :class:`~libv4e.csms._security.ChargerSecurity` record in the store, and
rotates AuthorizationKey passwords.

It is given its collaborators (store, send, clock, passwords, CA) rather than the façade."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from ocpp.v16 import call, call_result
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as call_result201
from ocpp.v201 import datatypes as datatypes201

from libv4e._errors import CertificateRequestRejected, SecurityPolicyError
from libv4e.csms._admission import Passwords
from libv4e.csms._ca import CertificateAuthority
from libv4e.csms._operator import Outcome, outcome_of
from libv4e.csms._security import (
    CRITICAL_EVENTS,
    MAX_EVENTS,
    CertificateRecord,
    ChargerSecurity,
    SecurityBook,
    SecurityEvent,
    authorization_key_problem,
    is_authorization_key,
)
from libv4e.csms._store import SecurityStore, StoreError
from libv4e.protocol._convert import to_json_payload
from libv4e.protocol._fields import field as _get
from libv4e.protocol._x509 import certificate_info, hash_data, load_pem_chain
from libv4e.transport._connection import Reply

log = logging.getLogger("libv4e.csms.security")

Send = Callable[..., Awaitable[Any]]

EVENT_LABELS = frozenset(
    CRITICAL_EVENTS
    | {
        "FailedToAuthenticateAtCentralSystem",
        "CentralSystemFailedToAuthenticate",
        "ReconfigurationOfSecurityParameters",
        "InvalidMessages",
        "AttemptedReplayAttacks",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
    }
)
"""The whitepaper's security event types: the only values a metrics label takes (any other
type is counted as ``other``)."""


def safe(text: str, limit: int = 120) -> str:
    """A charger's string for a log line: escaped (no forged lines) and length-capped."""
    return repr(text[:limit])[1:-1] + ("…" if len(text) > limit else "")


class SecurityCenter:
    """Security profiles, events, certificates, signed firmware, logs and key rotation."""

    def __init__(
        self,
        store: SecurityStore,
        *,
        send: Send,
        clock: Callable[[], dt.datetime],
        passwords: Passwords,
        ca: Callable[[], CertificateAuthority | None],
        certificate_days: Callable[[], int],
        key_grace: Callable[[], float],
    ) -> None:
        self.store = store
        self.book = SecurityBook()
        self._send = send
        self._clock = clock
        self._passwords = passwords
        self._ca = ca
        self._certificate_days = certificate_days
        self._key_grace = key_grace
        self.event_counts: collections.Counter[tuple[str, bool]] = collections.Counter()
        """(event type or ``other``, critical) → SecurityEventNotifications received."""

    async def load(self) -> None:
        """Read every charger's record from the store."""
        self.book.load(await self.store.load_security_states())

    async def _fresh(self, cp_id: str) -> None:
        """Read the charger's record back before changing it: in a cluster another node
        (the one holding the charger, or the one an operator called) may have written it
        since this node last synced, and the record is written whole."""
        try:
            stored = await self.store.security_state(cp_id)
        except StoreError:
            return  # the write that follows reports the store's failure
        if stored is not None:
            self.book.merge(stored)

    async def _save(self, state: ChargerSecurity) -> None:
        await self.store.save_security_state(state)

    def profile(self, cp_id: str) -> int:
        """The charger's security profile (1 unless set)."""
        return self.book.profile(cp_id)

    async def set_profile(self, cp_id: str, profile: int) -> ChargerSecurity:
        """Set the profile the CSMS requires of ``cp_id`` (the operator's decision; a
        charger cannot lower it by how it connects). SecurityPolicyError unless 1, 2 or 3,
        or 3 while no CA is configured."""
        if profile not in (1, 2, 3):
            raise SecurityPolicyError(f"a security profile is 1, 2 or 3, not {profile!r}")
        await self._fresh(cp_id)
        state = self.book.set_profile(cp_id, profile)
        await self._save(state)
        log.info("%s: security profile %d", cp_id, profile)
        return state

    # -- charger-initiated -----------------------------------------------------------------

    async def on_security_event(
        self, cp_id: str, msg: call.SecurityEventNotification
    ) -> call_result.SecurityEventNotification:
        record = self.book.event(str(msg.type), str(msg.timestamp), msg.tech_info, self._clock())
        label = record.type if record.type in EVENT_LABELS else "other"
        self.event_counts[(label, record.critical)] += 1
        if record.critical:
            log.warning(
                "%s: critical security event %s (%s)",
                cp_id,
                safe(record.type),
                safe(record.tech_info or "no techInfo"),
            )
        else:
            log.info("%s: security event %s", cp_id, safe(record.type))
        await self.store.add_security_event(cp_id, record, keep=MAX_EVENTS)
        return call_result.SecurityEventNotification()

    async def events(self, cp_id: str, limit: int) -> tuple[list[SecurityEvent], int]:
        """The charger's last ``limit`` security events, newest first, and how many are
        kept in all."""
        return await self.store.security_events(cp_id, limit=limit)

    async def on_sign_certificate(self, cp_id: str, msg: call.SignCertificate) -> Reply:
        """Accepted when the CA can sign the CSR (then CertificateSigned follows the
        answer), Rejected otherwise (no CA, a CSR that is not for this charger)."""
        ca = self._ca()
        if ca is None:
            log.warning("%s: SignCertificate refused: the CSMS has no charger CA", cp_id)
            return Reply(call_result.SignCertificate("Rejected"))
        try:
            chain = ca.sign_csr(msg.csr, cp_id, days=self._certificate_days(), now=self._clock())
        except CertificateRequestRejected as exc:
            log.warning("%s: SignCertificate rejected: %s", cp_id, exc)
            return Reply(call_result.SignCertificate("Rejected"))
        await self._fresh(cp_id)
        leaf, *rest = load_pem_chain(chain)
        info = certificate_info(leaf)
        record = CertificateRecord(
            "ChargePointCertificate",
            hash_data(leaf, rest[0] if rest else leaf),
            info.subject_cn,
            info.not_after,
            "Pending",
            self._clock(),
        )
        state, record = self.book.certificate(cp_id, record)
        await self._persist(state)

        async def deliver() -> None:
            await self.send_certificate_signed(cp_id, chain, record)

        return Reply(call_result.SignCertificate("Accepted"), after=deliver)

    async def send_certificate_signed(
        self, cp_id: str, chain: str, record: CertificateRecord
    ) -> None:
        """Send CertificateSigned and record the answer (never raises: logs instead)."""
        try:
            result = await self._send(cp_id, call.CertificateSigned(certificate_chain=chain))
            status = "Accepted" if str(result.status) == "Accepted" else "Rejected"
        except Exception as exc:  # the record says so; the charger may ask again
            status = "Failed"
            log.warning("%s: CertificateSigned not delivered: %s", cp_id, exc)
        await self._fresh(cp_id)
        record.status, record.updated_at = status, self._clock()
        self.book.certificate(cp_id, record)  # (replaces the stored copy of the same serial)
        try:
            await self._save(self.book.of(cp_id))
        except StoreError as exc:
            log.error("%s: could not record the CertificateSigned answer: %s", cp_id, exc)

    async def on_status(self, cp_id: str, kind: str, status: str, request_id: int | None) -> None:
        """SignedFirmwareStatusNotification (``firmware``) or LogStatusNotification
        (``log``)."""
        await self._fresh(cp_id)
        await self._persist(self.book.reported(cp_id, kind, status, request_id, self._clock()))

    async def on_status201(
        self, cp_id: str, kind: str, status: str, request_id: int | None
    ) -> bool:
        """A 2.0.1 FirmwareStatusNotification (``firmware``) or LogStatusNotification
        (``log``): one message for the signed and the unsigned update, the security and
        the diagnostics log. Recorded here (True) when its ``requestId`` names the
        charger's last SignedUpdateFirmware / GetLog; False for another request's status
        (a GetDiagnostics' or an UpdateFirmware's: the firmware book's), which changes
        nothing here. A LogStatusNotification without a ``requestId`` (a triggered one,
        no upload under way) is recorded here and False (the diagnostics book's too)."""
        await self._fresh(cp_id)
        if request_id is None:
            if kind == "log":
                await self.on_status(cp_id, kind, status, None)
            return False
        state = self.book.get(cp_id)
        request = None
        if state is not None:
            request = state.signed_update if kind == "firmware" else state.log_request
        if request is None or request.request_id != request_id:
            return False
        await self.on_status(cp_id, kind, status, request_id)
        return True

    async def _persist(self, state: ChargerSecurity) -> None:
        await self._save(state)  # a StoreError answers the charger InternalError

    # -- CSMS-initiated --------------------------------------------------------------------

    def handles(self, payload: Any) -> bool:
        """Whether :meth:`operate` records this command."""
        if isinstance(payload, call.ChangeConfiguration):
            return is_authorization_key(payload.key) or payload.key.casefold() == "securityprofile"
        if isinstance(payload, call201.SetVariables):  # 2.0.1's names of the same two
            return any(
                _security_key(i, strict=False) or _moves_the_station(i)
                for i in payload.set_variable_data
            )
        return isinstance(
            payload,
            call.InstallCertificate
            | call.DeleteCertificate
            | call.GetInstalledCertificateIds
            | call.SignedUpdateFirmware
            | call.GetLog,
        )

    async def operate(self, cp_id: str, payload: Any, *, timeout: float | None = None) -> Outcome:
        """Send a security command; the :class:`Outcome` holds the answer (or the error)
        and the security records it changed."""
        return await outcome_of(lambda records: self._operate(cp_id, payload, timeout, records))

    async def _operate(
        self, cp_id: str, payload: Any, timeout: float | None, state: dict[str, Any]
    ) -> Any:
        await self._fresh(cp_id)
        if isinstance(payload, call201.SetVariables):
            return await self._security_variable(cp_id, payload, timeout, state)
        if isinstance(payload, call.ChangeConfiguration):
            if is_authorization_key(payload.key):
                return await self._rotate_key(cp_id, payload.value, timeout, state)
            return await self._security_profile(cp_id, payload, timeout, state)
        if isinstance(payload, call.SignedUpdateFirmware | call.GetLog):
            return await self._request(cp_id, payload, timeout, state)
        result = await self._send(cp_id, payload, timeout=timeout)
        now = self._clock()
        record: ChargerSecurity = self.book.of(cp_id)
        if isinstance(payload, call.InstallCertificate):
            if str(result.status) == "Accepted":
                leaf = load_pem_chain(payload.certificate)[0]
                info = certificate_info(leaf)
                _, cert = self.book.certificate(
                    cp_id,
                    CertificateRecord(
                        str(payload.certificate_type),
                        hash_data(leaf, leaf),
                        info.subject_cn,
                        info.not_after,
                        "Installed",
                        now,
                    ),
                )
                state["certificate"] = cert.as_dict(now)
        elif isinstance(payload, call.DeleteCertificate):
            if str(result.status) == "Accepted":
                self.book.deleted(cp_id, to_json_payload(payload)["certificateHashData"], now)
        elif isinstance(payload, call.GetInstalledCertificateIds):
            hashes = to_json_payload(result).get("certificateHashData") or []
            self.book.reported_ids(cp_id, str(payload.certificate_type), hashes, now)
        await self._save(record)
        state["security"] = record.summary(now)
        return result

    async def _security_variable(
        self,
        cp_id: str,
        payload: call201.SetVariables,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        """A 2.0.1 SetVariables of SecurityCtrlr.BasicAuthPassword or SecurityProfile takes
        the same way as 1.6's ChangeConfiguration of AuthorizationKey or SecurityProfile
        (the password rotated with its grace, the profile's rules), alone in its call: the
        central system must follow the change, or the station is locked out."""
        items = payload.set_variable_data
        moving = [i for i in items if _moves_the_station(i)]
        if moving:
            names = ", ".join(
                f"{_get(i.component, 'name')}.{_get(i.variable, 'name')}" for i in moving
            )
            raise SecurityPolicyError(
                f"{names} would move the station to another identity or connection the "
                "central system does not follow: not sent (change it on the station)"
            )
        key = _security_key(items[0]) if len(items) == 1 else None
        if key is None:
            raise SecurityPolicyError(
                "set SecurityCtrlr.BasicAuthPassword or SecurityProfile alone in its "
                "SetVariables (one variable, no EVSE, attribute Actual), so the central "
                "system follows the change"
            )
        item = items[0]
        if key == "AuthorizationKey":
            answer = await self._rotate_key(cp_id, item.attribute_value, timeout, state)
        else:
            change = call.ChangeConfiguration(key=key, value=item.attribute_value)
            answer = await self._security_profile(cp_id, change, timeout, state)
        status = {"NotSupported": "UnknownVariable"}.get(str(answer.status), str(answer.status))
        return call_result201.SetVariables(
            set_variable_result=[
                datatypes201.SetVariableResultType(
                    attribute_status=status, component=item.component, variable=item.variable
                )
            ]
        )

    async def _security_profile(
        self,
        cp_id: str,
        payload: call.ChangeConfiguration,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        """SecurityProfile follows the whitepaper: 1–3, never lower than the charger's
        profile, 3 only once the charger holds a certificate the CA signed."""
        try:
            wanted = int(payload.value)
        except ValueError:
            raise SecurityPolicyError("SecurityProfile is 1, 2 or 3") from None
        current = self.book.profile(cp_id)
        if wanted not in (1, 2, 3):
            raise SecurityPolicyError("SecurityProfile is 1, 2 or 3")
        if wanted < current:
            raise SecurityPolicyError(
                f"SecurityProfile cannot go down ({current} → {wanted}); lower the CSMS's "
                "profile for the charger first if you really mean it"
            )
        if wanted == 3 and not any(
            c.certificate_type == "ChargePointCertificate" and c.status in ("Accepted", "Installed")
            for c in self.book.of(cp_id).certificates
        ):
            raise SecurityPolicyError(
                "SecurityProfile 3 needs a charger certificate: have the charger send "
                "SignCertificate (ExtendedTriggerMessage SignChargePointCertificate) first"
            )
        result = await self._send(cp_id, payload, timeout=timeout)
        if str(result.status) == "Accepted":
            record = self.book.set_profile(cp_id, wanted)
            await self._save(record)
            state["security"] = record.summary(self._clock())
        return result

    async def _request(
        self,
        cp_id: str,
        payload: call.SignedUpdateFirmware | call.GetLog,
        timeout: float | None,
        state: dict[str, Any],
    ) -> Any:
        kind = type(payload).__name__
        sent = to_json_payload(payload)
        record, request = self.book.requested(cp_id, kind, payload.request_id, sent, self._clock())
        await self._save(record)
        try:
            result = await self._send(cp_id, payload, timeout=timeout)
            request.answer = to_json_payload(result)
            return result
        except Exception as exc:
            self.book.unanswered(request, str(exc), self._clock())
            raise
        finally:
            state["security"] = record.summary(self._clock())
            with trio.CancelScope(shield=True):
                await self._save(record)

    async def rotate_key(
        self, cp_id: str, key: str | None = None, *, timeout: float | None = None
    ) -> Outcome:
        """Set a new AuthorizationKey (generated when ``key`` is None) with
        ChangeConfiguration; once Accepted it is the charger's password, and the old one
        stays valid for the reconnect window (``key_grace``) only. The key never appears
        in a record, a log line or an answer (``records["authorization_key"]`` says
        whether it was rotated)."""
        return await outcome_of(lambda records: self._rotate_key(cp_id, key, timeout, records))

    async def _rotate_key(
        self, cp_id: str, key: str | None, timeout: float | None, state: dict[str, Any]
    ) -> Any:
        key = key if key is not None else secrets.token_hex(20)
        problem = authorization_key_problem(key)
        if problem:
            raise SecurityPolicyError(problem)
        result = await self._send(
            cp_id, call.ChangeConfiguration(key="AuthorizationKey", value=key), timeout=timeout
        )
        status = str(result.status)
        if status in ("Accepted", "RebootRequired"):
            await self._passwords.rotate(cp_id, key, grace=self._key_grace())
            record = self.book.of(cp_id)
            record.key_rotated_at = self._clock()
            await self._save(record)
            log.info(
                "%s: AuthorizationKey rotated (the old key works for %g s)",
                cp_id,
                self._key_grace(),
            )
            state["authorization_key"] = {"rotated": True, "old_key_valid_for_s": self._key_grace()}
        else:
            state["authorization_key"] = {"rotated": False}
        return result


def _security_key(item: Any, *, strict: bool = True) -> str | None:
    """The 1.6 key a 2.0.1 SetVariables entry sets, if it is one of the security
    extension's (AuthorizationKey: SecurityCtrlr.BasicAuthPassword; SecurityProfile);
    ``strict``: only on the station as a whole (no EVSE, no instance), attribute Actual."""
    component, variable = getattr(item, "component", None), getattr(item, "variable", None)
    name = str(getattr(component, "name", "")).casefold()
    variable_name = str(getattr(variable, "name", "")).casefold()
    if name != "securityctrlr" or variable_name not in ("basicauthpassword", "securityprofile"):
        return None
    if strict and (
        getattr(component, "evse", None) is not None
        or getattr(component, "instance", None)
        or getattr(variable, "instance", None)
        or str(getattr(item, "attribute_type", None) or "Actual") != "Actual"
    ):
        return None
    return "AuthorizationKey" if variable_name == "basicauthpassword" else "SecurityProfile"


MOVES_THE_STATION = frozenset(
    {("securityctrlr", "identity"), ("ocppcommctrlr", "networkconfigurationpriority")}
)
"""(component, variable), casefolded: the station's id and which network profile it
connects with — set from here, it would come back as another charger, or not at all."""


def _moves_the_station(item: Any) -> bool:
    component, variable = getattr(item, "component", None), getattr(item, "variable", None)
    where = (
        str(getattr(component, "name", "")).casefold(),
        str(getattr(variable, "name", "")).casefold(),
    )
    return where in MOVES_THE_STATION
