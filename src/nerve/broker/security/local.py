"""A secure local setup made in one step (``nerve up --secure``, ``Platform(secure=True)``): a
certificate authority, a broker certificate it signs, and an admin credential, kept in the
data directory so that a restart finds them again; and the broker settings that use them (one
SASL_SSL listener, StandardAuthorizer with the admin as its only super user).

Files, in ``<data dir>/security/`` (the directory and every secret mode 0600/0700):

- ``ca.pem``: the CA's certificate, for clients' ``ssl.ca.location``; ``ca.key`` its key
- ``broker.keystore.pem``: the broker's key and certificate (Kafka's PEM keystore)
- ``admin.properties``: the admin's librdkafka settings, ``-F`` or ``NERVE_CLIENT_PROPERTIES``
- ``http.users``: the users of the registry's and the console's HTTP Basic login (Jetty's
  ``user: password,role`` lines, the admin's password), ``authentication.users.file``

The admin logs in with PLAIN (its password in the broker's JAAS users, over TLS only); other
users are made by the admin as SCRAM credentials (AlterUserScramCredentials).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nerve.broker.security.state import STANDARD_AUTHORIZER
from nerve.security.client_settings import read_properties, write_properties

ADMIN = "admin"
LISTENER = "SASL_SSL"
_VALIDITY = datetime.timedelta(days=825)  # the longest a TLS server certificate is trusted


@dataclass
class LocalSecurity:
    """The files of a secure local setup, and whether this call made them."""

    directory: Path
    admin_password: str
    created: bool  # True: new (the caller prints the password, once)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.keystore.pem"

    @property
    def admin_properties(self) -> Path:
        return self.directory / "admin.properties"

    @property
    def http_users(self) -> Path:
        return self.directory / "http.users"

    def http_settings(self) -> dict[str, str]:
        """The registry's and the console's login settings: HTTP Basic, the admin only."""
        return {
            "authentication.method": "BASIC",
            "authentication.users.file": str(self.http_users.resolve()),
        }

    def write_http_users(self) -> None:
        _write_secret(
            self.http_users,
            (
                "# nerve up --secure: who may log in to the registry and the console (Jetty's\n"
                "# users file: user: password[,role ...]); a user also needs a Kafka credential\n"
                "# with the same password to see anything in the console\n"
                f"{ADMIN}: {self.admin_password},admin\n"
            ).encode(),
        )

    def broker_settings(self, host: str, port: int) -> dict[str, str]:
        """Kafka's settings for one SASL_SSL listener on HOST:PORT with authorization on."""
        users = f'user_{ADMIN}="{self.admin_password}"'
        return {
            "listeners": f"{LISTENER}://{host}:{port}",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            f"listener.name.{LISTENER.lower()}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
            ),
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def client_settings(self, user: str, password: str, mechanism: str) -> dict[str, str]:
        """librdkafka settings for a user of this setup (without bootstrap.servers)."""
        return {
            "security.protocol": LISTENER,
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
            "ssl.ca.location": str(self.ca.resolve()),
        }

    def admin_settings(self) -> dict[str, str]:
        return self.client_settings(ADMIN, self.admin_password, "PLAIN")

    def write_admin_properties(self, bootstrap: str) -> None:
        write_properties(
            self.admin_properties,
            {"bootstrap.servers": bootstrap, **self.admin_settings()},
            "nerve's admin (a super user): nerve -F THIS_FILE ..., or\n"
            "export NERVE_CLIENT_PROPERTIES=THIS_FILE",
        )


def prepare(data_dir: Path, hosts: list[str] | None = None) -> LocalSecurity:
    """The setup in ``data_dir/security``: read if it is there, else made (CA, broker
    certificate for localhost, 127.0.0.1 and ``hosts``, admin password)."""
    directory = Path(data_dir) / "security"
    found = LocalSecurity(directory, "", created=False)
    if found.admin_properties.exists() and found.keystore.exists() and found.ca.exists():
        password = read_properties(found.admin_properties).get("sasl.password", "")
        if password:
            found.admin_password = password
            if not found.http_users.exists():  # made before the registry took logins
                found.write_http_users()
            return found
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    made = LocalSecurity(directory, secrets.token_urlsafe(24), created=True)
    ca_key, ca_cert = _authority()
    _write_secret(directory / "ca.key", _key_pem(ca_key))
    made.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key, cert = _server_certificate(ca_key, ca_cert, hosts or [])
    _write_secret(made.keystore, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM))
    made.write_admin_properties("")
    made.write_http_users()
    return made


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted: the file's mode protects it, and both nerve and Kafka read it so.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nerve"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"nerve local CA {socket.gethostname()}"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in ["localhost", "127.0.0.1", "::1", socket.gethostname(), *hosts]:
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in names:
            names.append(entry)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
