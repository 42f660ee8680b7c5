"""Certificates made at test time with ``cryptography``: a CA, a server certificate for
127.0.0.1 and localhost, client certificates with a chosen subject, written as PEM files in
the layouts Kafka's ``ssl.keystore.type=PEM`` and clients' ``ssl.*.location`` settings read."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    key: Path  # the private key alone (PEM, unencrypted)
    cert: Path  # the certificate alone
    keystore: Path  # key then certificate chain (Kafka's PEM keystore)


def _name(subject: str) -> x509.Name:
    parts = []
    oids = {
        "CN": NameOID.COMMON_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "C": NameOID.COUNTRY_NAME,
        "L": NameOID.LOCALITY_NAME,
    }
    for item in subject.split(","):
        kind, _, value = item.strip().partition("=")
        parts.append(x509.NameAttribute(oids[kind], value))
    return x509.Name(list(reversed(parts)))  # RFC 4514 order is most specific first


class TestCA:
    """A certificate authority in ``directory``; ``ca`` is its certificate's PEM file."""

    def __init__(self, directory: Path, name: str = "CN=nerve test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.name = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca = self.directory / "ca.pem"
        self.ca.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, file_name: str, subject: str, *, server: bool = False,
              ) -> Issued:  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
        # Unencrypted: Kafka reads encrypted PKCS#8 only with PBES1 algorithms, which
        # ``cryptography`` does not write; both brokers take an unencrypted PEM key.
        paths = Issued(self.directory / f"{file_name}.key", self.directory / f"{file_name}.crt",
                       self.directory / f"{file_name}.keystore.pem")  # fmt: skip
        paths.key.write_bytes(key_pem)
        paths.cert.write_bytes(cert_pem)
        paths.keystore.write_bytes(key_pem + cert_pem)
        return paths


def ssl_listener_configs(ca: TestCA, server: Issued, client_auth: str = "none") -> dict[str, str]:
    """Broker settings for TLS with PEM files, the same on nerve and on Kafka."""
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(server.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca.ca),
        "ssl.client.auth": client_auth,
    }
