"""The CSMS-side certificate authority for charger certificates (OCPP 1.6 security
extension, profile 3): it signs the CSRs chargers send with SignCertificate, and its
certificate is what the CSMS's TLS server trusts for client certificates.

An operator supplies the CA (``--charger-ca-cert`` / ``--charger-ca-key``); with none, the
apps create a local *development* CA in the state directory and say so at startup. No I/O
here except :meth:`CertificateAuthority.load_or_create` and :meth:`save`, which read and
write two PEM files."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libv4e._errors import CertificateRequestRejected
from libv4e.protocol._x509 import chain_pem, common_name, new_private_key, private_key_pem

DEV_CA_NAME = "libv4e development charger CA"
CA_CERT_FILE = "charger-ca.pem"
CA_KEY_FILE = "charger-ca-key.pem"

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateAuthority:
    """Signs charger certificates whose subject CN is the charger id."""

    def __init__(self, certificate: x509.Certificate, key: _SigningKey) -> None:
        def spki(public: Any) -> bytes:
            data: bytes = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return data

        if spki(certificate.public_key()) != spki(key.public_key()):
            raise ValueError("the CA key does not belong to the CA certificate")
        self.certificate = certificate
        self.key = key

    @property
    def certificate_pem(self) -> str:
        """The CA certificate, PEM (what a TLS server trusts for client certificates)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def create(
        cls, name: str = DEV_CA_NAME, *, days: int = 3650, now: dt.datetime | None = None
    ) -> CertificateAuthority:
        """A new self-signed CA (P-256)."""
        now = now or dt.datetime.now(dt.UTC)
        key = new_private_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, cert_pem: str | bytes, key_pem: str | bytes) -> CertificateAuthority:
        """A CA from its PEM certificate and (unencrypted) key; ValueError if they do not
        fit together or are not PEM."""
        cert_data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
        key_data = key_pem.encode() if isinstance(key_pem, str) else key_pem
        certificate = x509.load_pem_x509_certificate(cert_data)
        key = serialization.load_pem_private_key(key_data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the CA key must be an EC or RSA private key")
        return cls(certificate, key)

    @classmethod
    def from_files(
        cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
    ) -> CertificateAuthority:
        """A CA from two PEM files."""
        return cls.load(pathlib.Path(cert_path).read_bytes(), pathlib.Path(key_path).read_bytes())

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str]) -> tuple[CertificateAuthority, bool]:
        """The development CA kept in ``directory`` (created there, key mode 0600, when
        missing); the flag says whether it was created now."""
        folder = pathlib.Path(directory)
        cert_path, key_path = folder / CA_CERT_FILE, folder / CA_KEY_FILE
        if cert_path.exists() and key_path.exists():
            return cls.from_files(cert_path, key_path), False
        ca = cls.create()
        ca.save(folder)
        return ca, True

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the certificate and the key (mode 0600) into ``directory``."""
        folder = pathlib.Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CA_CERT_FILE).write_text(self.certificate_pem)
        key_path = folder / CA_KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            if isinstance(self.key, ec.EllipticCurvePrivateKey):
                out.write(private_key_pem(self.key))
            else:
                out.write(
                    self.key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode()
                )

    def sign_csr(
        self, csr_pem: str, cp_id: str, *, days: int = 365, now: dt.datetime | None = None
    ) -> str:
        """Sign a charger's CSR: its signature must verify and its subject CN must be
        ``cp_id`` (CertificateRequestRejected otherwise). Returns the chain, PEM: the new
        certificate, then the CA's."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as exc:
            raise CertificateRequestRejected("the CSR is not a PEM certificate request") from exc
        if not csr.is_signature_valid:
            raise CertificateRequestRejected("the CSR's signature does not verify")
        cn = common_name(csr.subject)
        if cn != cp_id:
            raise CertificateRequestRejected(
                f"the CSR's subject CN is {cn!r}, not the charger id {cp_id!r}"
            )
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise CertificateRequestRejected("the CSR's key must be EC or RSA")
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
            raise CertificateRequestRejected("an RSA key must have at least 2048 bits")
        now = now or dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return chain_pem([certificate, self.certificate])
