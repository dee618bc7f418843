"""X.509 pieces the OCPP 1.6 security extension needs on both sides, on the maintained
``cryptography`` package: a charger's key pair and certificate signing request, the
``CertificateHashData`` of a certificate (hashAlgorithm, issuerNameHash, issuerKeyHash,
serialNumber, as OCPP defines them), and what a certificate says (subject CN, validity).
No I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
"""OCPP's HashAlgorithmEnumType → the hash."""


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the CSMS keeps of a certificate."""

    subject_cn: str | None
    issuer_cn: str | None
    serial_number: str
    """Hex, lower case, no leading zeros (OCPP's serialNumber)."""
    not_before: dt.datetime
    not_after: dt.datetime


def load_pem_chain(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, leaf first (ValueError if there is none)."""
    data = pem.encode() if isinstance(pem, str) else pem
    certificates = x509.load_pem_x509_certificates(data)
    if not certificates:
        raise ValueError("no certificate in the PEM data")
    return certificates


def common_name(name: x509.Name) -> str | None:
    """The first commonName of an X.509 name, if any."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[0].value
    return value.decode() if isinstance(value, bytes) else str(value)


def certificate_info(certificate: x509.Certificate) -> CertificateInfo:
    """Subject and issuer CN, serial number and validity of ``certificate``."""
    return CertificateInfo(
        common_name(certificate.subject),
        common_name(certificate.issuer),
        format(certificate.serial_number, "x"),
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
    )


def hash_data(
    certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> dict[str, str]:
    """OCPP's CertificateHashData of ``certificate``: the hash of its issuer's DER-encoded
    distinguished name, the hash of the issuer's public key (the DER of the key's BIT
    STRING, as in OCSP's CertID) and its serial number in hex."""
    kind = HASH_ALGORITHMS.get(algorithm)
    if kind is None:
        raise ValueError(f"hash algorithm {algorithm!r}: one of {', '.join(HASH_ALGORITHMS)}")
    name_hash = hashes.Hash(kind())
    name_hash.update(certificate.issuer.public_bytes())
    key_hash = hashes.Hash(kind())
    key_hash.update(
        issuer.public_key().public_bytes(
            serialization.Encoding.X962
            if isinstance(issuer.public_key(), ec.EllipticCurvePublicKey)
            else serialization.Encoding.DER,
            serialization.PublicFormat.UncompressedPoint
            if isinstance(issuer.public_key(), ec.EllipticCurvePublicKey)
            else serialization.PublicFormat.PKCS1,
        )
    )
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": name_hash.finalize().hex(),
        "issuerKeyHash": key_hash.finalize().hex(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key (what the whitepaper's cipher suites use)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_private_key(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 (or other EC) private key from PEM."""
    key = serialization.load_pem_private_key(
        pem.encode() if isinstance(pem, str) else pem, password=None
    )
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def certificate_signing_request(
    key: ec.EllipticCurvePrivateKey, cp_id: str, organization: str | None = None
) -> str:
    """A PEM CSR for ``key`` whose subject CN is the charger id (what the CSMS's CA checks
    before it signs), with an optional organizationName (the whitepaper's CPO name)."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def chain_pem(certificates: Sequence[x509.Certificate]) -> str:
    """Certificates as one PEM bundle, in order."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)
