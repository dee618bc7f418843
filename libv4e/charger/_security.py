"""The simulated charger's side of the OCPP 1.6 security extension, as a part the charger
owns (plain state, no I/O): its security profile, its AuthorizationKey, its key pair and
the certificate the CSMS signed (SignCertificate / CertificateSigned), the root
certificates installed on it (InstallCertificate, GetInstalledCertificateIds,
DeleteCertificate), its security log, and the TLS context it connects with once it holds a
certificate (mutual TLS, profile 3)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import ssl
import tempfile
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v16 import call, call_result, datatypes, enums

from libv4e.protocol._x509 import (
    certificate_info,
    certificate_signing_request,
    hash_data,
    load_pem_chain,
    load_private_key,
    new_private_key,
    private_key_pem,
)

MAX_ROOTS = 16
"""Root certificates the simulated charger keeps (InstallCertificate beyond: Rejected)."""
MAX_LOG = 200
"""Security log entries kept (the oldest go first)."""


@dataclasses.dataclass(slots=True)
class InstalledRoot:
    """A root certificate installed on the charger."""

    use: str
    """CentralSystemRootCertificate or ManufacturerRootCertificate."""
    pem: str


class ChargerSecurityState:
    """What a charger keeps for the security extension."""

    def __init__(self, cp_id: str, profile: int = 1, organization: str | None = None) -> None:
        self.cp_id = cp_id
        self.profile = profile
        self.organization = organization
        self.authorization_key: str | None = None
        """Set by ChangeConfiguration(AuthorizationKey): the password from then on."""
        self._pending_key: ec.EllipticCurvePrivateKey | None = None
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.certificate_chain: str | None = None
        self.roots: list[InstalledRoot] = []
        self.log: list[tuple[str, str, str | None]] = []
        """(timestamp, event type, techInfo) of the security events raised."""

    def as_dict(self) -> dict[str, Any]:
        """What a real charger keeps in flash (its key, like its certificate, included: the
        state file is the simulator's flash)."""
        return {
            "profile": self.profile,
            "authorization_key": self.authorization_key,
            "key": None if self.key is None else private_key_pem(self.key),
            "certificate_chain": self.certificate_chain,
            "roots": [{"use": r.use, "pem": r.pem} for r in self.roots],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what :meth:`as_dict` saved."""
        self.profile = int(data.get("profile") or self.profile)
        self.authorization_key = data.get("authorization_key")
        key = data.get("key")
        self.key = None if key is None else load_private_key(key)
        self.certificate_chain = data.get("certificate_chain")
        self.roots = [InstalledRoot(r["use"], r["pem"]) for r in data.get("roots") or []]

    # -- credentials -------------------------------------------------------------------------

    def password(self, configured: str | None) -> str | None:
        """The password to present: the AuthorizationKey once set, else the configured one."""
        return self.authorization_key or configured

    def change(self, key: str, value: str) -> enums.ConfigurationStatus | None:
        """ChangeConfiguration of AuthorizationKey or SecurityProfile (None: another key).
        AuthorizationKey: 16–40 printable characters; SecurityProfile: never lower, and 3
        only with a signed certificate (the whitepaper's rules)."""
        if key.casefold() == "authorizationkey":
            if not (16 <= len(value) <= 40 and all(0x21 <= ord(c) <= 0x7E for c in value)):
                return enums.ConfigurationStatus.rejected
            self.authorization_key = value
            return enums.ConfigurationStatus.accepted
        if key.casefold() == "securityprofile":
            try:
                wanted = int(value)
            except ValueError:
                return enums.ConfigurationStatus.rejected
            if wanted not in (1, 2, 3) or wanted < self.profile:
                return enums.ConfigurationStatus.rejected
            if wanted == 3 and self.certificate_chain is None:
                return enums.ConfigurationStatus.rejected
            self.profile = wanted
            return enums.ConfigurationStatus.accepted
        return None

    def configuration_keys(self, wanted: list[str] | None) -> list[datatypes.KeyValue]:
        """The security keys for a GetConfiguration answer (AuthorizationKey is write-only:
        listed without a value)."""
        keys = [
            datatypes.KeyValue("SecurityProfile", False, str(self.profile)),
            datatypes.KeyValue("AuthorizationKey", False, None),
        ]
        if not wanted:
            return keys
        lowered = {w.casefold() for w in wanted}
        return [k for k in keys if k.key.casefold() in lowered]

    # -- certificates ------------------------------------------------------------------------

    def new_csr(self) -> call.SignCertificate:
        """A fresh key pair and its CSR (subject CN: the charger id)."""
        self._pending_key = new_private_key()
        return call.SignCertificate(
            csr=certificate_signing_request(self._pending_key, self.cp_id, self.organization)
        )

    def certificate_signed(self, chain: str) -> call_result.CertificateSigned:
        """Accept the chain if its leaf is for this charger and the key asked for."""
        try:
            leaf = load_pem_chain(chain)[0]
        except ValueError:
            return call_result.CertificateSigned(enums.CertificateSignedStatus.rejected)
        key = self._pending_key
        if (
            key is None
            or certificate_info(leaf).subject_cn != self.cp_id
            or _spki(leaf.public_key()) != _spki(key.public_key())
        ):
            return call_result.CertificateSigned(enums.CertificateSignedStatus.rejected)
        self.key, self.certificate_chain, self._pending_key = key, chain, None
        return call_result.CertificateSigned(enums.CertificateSignedStatus.accepted)

    def certificate_expires(self) -> dt.datetime | None:
        """When the charger's certificate expires, if it has one."""
        if self.certificate_chain is None:
            return None
        return certificate_info(load_pem_chain(self.certificate_chain)[0]).not_after

    def install(self, req: call.InstallCertificate) -> call_result.InstallCertificate:
        try:
            load_pem_chain(req.certificate)
        except ValueError:
            return call_result.InstallCertificate(enums.CertificateStatus.rejected)
        if len(self.roots) >= MAX_ROOTS:
            return call_result.InstallCertificate(enums.CertificateStatus.rejected)
        self.roots.append(InstalledRoot(str(req.certificate_type), req.certificate))
        return call_result.InstallCertificate(enums.CertificateStatus.accepted)

    def _hashes(self, use: str) -> list[tuple[InstalledRoot, dict[str, str]]]:
        found = []
        for root in self.roots:
            if root.use != use:
                continue
            cert = load_pem_chain(root.pem)[0]
            found.append((root, hash_data(cert, cert)))
        return found

    def installed_ids(
        self, req: call.GetInstalledCertificateIds
    ) -> call_result.GetInstalledCertificateIds:
        hashes = [h for _, h in self._hashes(str(req.certificate_type))]
        if not hashes:
            return call_result.GetInstalledCertificateIds(
                enums.GetInstalledCertificateStatus.not_found, None
            )
        return call_result.GetInstalledCertificateIds(
            enums.GetInstalledCertificateStatus.accepted,
            [
                datatypes.CertificateHashData(
                    hash_algorithm=enums.HashAlgorithm(h["hashAlgorithm"]),
                    issuer_name_hash=h["issuerNameHash"],
                    issuer_key_hash=h["issuerKeyHash"],
                    serial_number=h["serialNumber"],
                )
                for h in hashes
            ],
        )

    def delete(self, req: call.DeleteCertificate) -> call_result.DeleteCertificate:
        wanted = req.certificate_hash_data
        for use in ("CentralSystemRootCertificate", "ManufacturerRootCertificate"):
            for root, h in self._hashes(use):
                if (
                    h["serialNumber"] == wanted.serial_number
                    and h["issuerNameHash"] == wanted.issuer_name_hash
                    and h["issuerKeyHash"] == wanted.issuer_key_hash
                ):
                    self.roots.remove(root)
                    return call_result.DeleteCertificate(enums.DeleteCertificateStatus.accepted)
        return call_result.DeleteCertificate(enums.DeleteCertificateStatus.not_found)

    # -- security log ------------------------------------------------------------------------

    def event(self, timestamp: str, kind: str, tech_info: str | None = None) -> Any:
        """Log a security event; the SecurityEventNotification to send."""
        self.log.append((timestamp, kind, tech_info))
        del self.log[:-MAX_LOG]
        return call.SecurityEventNotification(type=kind, timestamp=timestamp, tech_info=tech_info)

    # -- TLS -------------------------------------------------------------------------------

    def ssl_context(self, base: ssl.SSLContext | None) -> ssl.SSLContext | None:
        """The context to connect with: ``base`` until the charger holds a certificate,
        then a copy of ``base``'s trust (plus installed CSMS roots) presenting it."""
        if base is None or self.certificate_chain is None or self.key is None:
            return base
        context = ssl.create_default_context()
        context.check_hostname = base.check_hostname
        context.verify_mode = base.verify_mode
        for der in base.get_ca_certs(binary_form=True):
            context.load_verify_locations(cadata=der)
        for root in self.roots:
            if root.use == "CentralSystemRootCertificate":
                context.load_verify_locations(cadata=root.pem)
        with tempfile.TemporaryDirectory() as folder:  # ssl loads keys from files only
            cert_path, key_path = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
            with open(cert_path, "w") as out:
                out.write(self.certificate_chain)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(private_key_pem(self.key))
            context.load_cert_chain(cert_path, key_path)
        return context


def _spki(public: Any) -> bytes:
    data: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data
