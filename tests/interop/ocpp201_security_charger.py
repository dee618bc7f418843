"""A charging station written with the `ocpp` package's asyncio OCPP 2.0.1 ChargePoint
(websockets, subprotocol ocpp2.0.1) that speaks the security messages: it asks for its
certificate with a real CSR (SignCertificate, its own key made with `cryptography`),
checks the CertificateSigned chain it receives (issued by the chain's CA, for its key),
and keeps the root certificates the central system installs (InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate), hashing them itself. Interop peer for
tests: prints one JSON line per event on stdout; the package validates every message
against its 2.0.1 schemas itself.
Usage: ocpp201_security_charger.py ws://127.0.0.1:PORT CP_ID"""

import asyncio
import hashlib
import json
import sys

import websockets
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v201 import ChargePoint as cp
from ocpp.v201 import call, call_result


def emit(**event):
    print(json.dumps(event), flush=True)


def hash_data(certificate):
    """OCPP CertificateHashData of a self-signed root (SHA256): the issuer name's DER,
    the issuer key's BIT STRING contents, the serial number in hex."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_bytes = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        key_bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": hashlib.sha256(certificate.issuer.public_bytes()).hexdigest(),
        "issuer_key_hash": hashlib.sha256(key_bytes).hexdigest(),
        "serial_number": format(certificate.serial_number, "x"),
    }


class ChargePoint(cp):
    async def run(self):
        boot = await self.call(
            call.BootNotification(
                charging_station={"model": "RefSec201", "vendor_name": "RefVendor201"},
                reason="PowerUp",
            )
        )
        emit(event="BootNotification.conf", status=boot.status)
        self.key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.id)]))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        v2g = await self.call(call.SignCertificate(csr=csr, certificate_type="V2GCertificate"))
        emit(event="SignCertificate.conf", kind="V2GCertificate", status=v2g.status)
        answer = await self.call(
            call.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate")
        )
        emit(event="SignCertificate.conf", kind="ChargingStationCertificate", status=answer.status)

    # -- what the central system asks -----------------------------------------------------

    @on("CertificateSigned")
    def on_certificate_signed(self, certificate_chain, certificate_type=None, **_):
        chain = x509.load_pem_x509_certificates(certificate_chain.encode())
        leaf, issuer = chain[0], chain[-1]
        mine = self.key.public_key().public_numbers() == leaf.public_key().public_numbers()
        try:
            leaf.verify_directly_issued_by(issuer)
            verified = True
        except (ValueError, TypeError, InvalidSignature):
            verified = False
        subject = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        emit(
            event="CertificateSigned",
            certificate_type=certificate_type,
            chain=certificate_chain,
            verified=verified,
            mine=mine,
            subject=subject,
        )
        ok = verified and mine and subject == self.id
        return call_result.CertificateSigned(status="Accepted" if ok else "Rejected")

    @on("InstallCertificate")
    def on_install_certificate(self, certificate_type, certificate, **_):
        emit(event="InstallCertificate", certificate_type=certificate_type)
        try:
            root = x509.load_pem_x509_certificate(certificate.encode())
        except ValueError:
            return call_result.InstallCertificate(status="Rejected")
        self.roots.append((certificate_type, root))
        return call_result.InstallCertificate(status="Accepted")

    @on("GetInstalledCertificateIds")
    def on_get_installed_certificate_ids(self, certificate_type=None, **_):
        emit(event="GetInstalledCertificateIds", certificate_type=certificate_type)
        chains = [
            {"certificate_type": use, "certificate_hash_data": hash_data(root)}
            for use, root in self.roots
            if not certificate_type or use in certificate_type
        ]
        if not chains:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=chains
        )

    @on("DeleteCertificate")
    def on_delete_certificate(self, certificate_hash_data, **_):
        emit(event="DeleteCertificate", serial_number=certificate_hash_data["serial_number"])
        for entry in list(self.roots):
            if hash_data(entry[1]) == certificate_hash_data:
                self.roots.remove(entry)
                return call_result.DeleteCertificate(status="Accepted")
        return call_result.DeleteCertificate(status="NotFound")


async def main(url, cp_id):
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp2.0.1"]) as ws:
        emit(event="connected", subprotocol=ws.subprotocol)
        charger = ChargePoint(cp_id, ws)
        charger.roots = []
        await asyncio.gather(charger.start(), charger.run())


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        sys.exit(0)
