"""Listeners as Kafka configures them: ``listeners``, ``advertised.listeners`` and
``listener.security.protocol.map``, and the TLS context of each SSL or SASL_SSL listener.

TLS is the standard library's ``ssl`` (OpenSSL). Keystores are PEM files (Kafka's
``ssl.keystore.type=PEM``, key and certificate chain in one file, or inline in
``ssl.keystore.key`` and ``ssl.keystore.certificate.chain``) or PKCS12 files; JKS, a Java-only
format, is refused with a message saying how to convert it.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nerve.broker.security.settings import SecuritySettings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_Get = Callable[[str], "str | None"]
_LISTENER = re.compile(r"^([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/]*):(\d+)$")


class ListenerError(ValueError):
    """A listener or TLS setting that cannot be used; the message says which and why."""


@dataclass
class Listener:
    """One endpoint clients connect to; ``port`` becomes the bound port once listening."""

    name: str
    protocol: str
    host: str
    port: int
    advertised_host: str
    advertised_port: int

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def bound(self, host: str, port: int) -> None:
        if not self.port:
            self.port = port
        if not self.advertised_port:
            self.advertised_port = port
        if not self.host and not self.advertised_host:
            self.advertised_host = host

    def __str__(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


def _endpoints(text: str, setting: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _LISTENER.match(item)
        if match is None:
            raise ListenerError(
                f"{setting}: {item!r} is not NAME://HOST:PORT (PLAINTEXT://127.0.0.1:9092)"
            )
        name, host, port = match.group(1).upper(), match.group(2).strip("[]"), int(match.group(3))
        if any(name == seen for seen, _, _ in out):
            raise ListenerError(f"{setting}: listener {name} is named twice")
        out.append((name, host, port))
    return out


def protocol_map(settings: SecuritySettings) -> dict[str, str]:
    text = settings.get("listener.security.protocol.map") or ""
    out = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        name, sep, protocol = pair.partition(":")
        if not sep or protocol.strip().upper() not in PROTOCOLS:
            raise ListenerError(
                f"listener.security.protocol.map: {pair!r} is not NAME:PROTOCOL with PROTOCOL "
                f"one of {', '.join(PROTOCOLS)}"
            )
        out[name.strip().upper()] = protocol.strip().upper()
    return out


def parse_listeners(
    settings: SecuritySettings,
    default_host: str,
    default_port: int,
    advertised: tuple[str | None, int | None] = (None, None),
) -> list[Listener]:
    """The listeners to open: ``listeners`` if set, else one PLAINTEXT listener on the
    ``--listen`` address (the insecure default every existing setup uses)."""
    text = settings.values.get("listeners")
    if not text:
        host, port = advertised
        return [
            Listener(
                "PLAINTEXT",
                "PLAINTEXT",
                default_host,
                default_port,
                host or (default_host if default_host not in ("", "0.0.0.0") else ""),
                port or (default_port if default_port else 0),
            )
        ]
    protocols = protocol_map(settings)
    advertised_by_name = {
        name: (host, port)
        for name, host, port in _endpoints(
            settings.values.get("advertised.listeners", ""), "advertised.listeners"
        )
    }
    listeners = []
    for name, host, port in _endpoints(text, "listeners"):
        protocol = protocols.get(name)
        if protocol is None:
            raise ListenerError(
                f"listener {name} has no security protocol: name it in "
                f"listener.security.protocol.map ({name}:SASL_SSL) or call it one of "
                f"{', '.join(PROTOCOLS)}"
            )
        unknown = set(advertised_by_name) - {n for n, _, _ in _endpoints(text, "listeners")}
        if unknown:
            raise ListenerError(
                f"advertised.listeners names {', '.join(sorted(unknown))}, not in listeners"
            )
        a_host, a_port = advertised_by_name.get(name, (host, port))
        if a_host in ("0.0.0.0", "::"):
            raise ListenerError(
                f"advertised.listeners: {name} advertises {a_host}, which clients cannot reach"
            )
        listeners.append(Listener(name, protocol, host, port, a_host, a_port))
    if not listeners:
        raise ListenerError("listeners is set but names no listener")
    return listeners


def server_context(settings: SecuritySettings, listener: str) -> ssl.SSLContext:
    """The TLS context of one listener, from Kafka's ``ssl.*`` settings."""

    def get(name: str) -> str | None:
        return settings.get(name, listener)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    protocols = [p.strip() for p in (get("ssl.enabled.protocols") or "").split(",") if p.strip()]
    versions = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
    chosen = [versions[p] for p in protocols if p in versions]
    if protocols and not chosen:
        raise ListenerError(
            f"listener {listener}: ssl.enabled.protocols {','.join(protocols)} names no protocol "
            "nerve offers (TLSv1.2, TLSv1.3)"
        )
    if chosen:
        context.minimum_version, context.maximum_version = min(chosen), max(chosen)
    ciphers = get("ssl.cipher.suites")
    if ciphers:
        try:
            context.set_ciphers(":".join(c.strip() for c in ciphers.split(",")))
        except ssl.SSLError as exc:
            raise ListenerError(
                f"listener {listener}: ssl.cipher.suites {ciphers!r}: OpenSSL accepts none ({exc})"
            ) from None
    _load_keystore(context, get, listener)
    _load_truststore(context, get, listener)
    client_auth = (get("ssl.client.auth") or "none").lower()
    modes = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    if client_auth not in modes:
        raise ListenerError(
            f"listener {listener}: ssl.client.auth must be none, requested or required, "
            f"not {client_auth!r}"
        )
    context.verify_mode = modes[client_auth]
    return context


def _load_keystore(context: ssl.SSLContext, get: _Get, listener: str) -> None:
    kind = (get("ssl.keystore.type") or "JKS").upper()
    location = get("ssl.keystore.location")
    inline_key, inline_chain = get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")
    if inline_key and inline_chain:
        with _temporary_pem(inline_key + "\n" + inline_chain) as path:
            _load_chain(context, path, get("ssl.key.password"), listener)
        return
    if not location:
        raise ListenerError(
            f"listener {listener} uses TLS but ssl.keystore.location is not set (a PEM file "
            "with the private key and certificate chain, ssl.keystore.type=PEM)"
        )
    if not os.path.exists(location):
        raise ListenerError(f"listener {listener}: ssl.keystore.location {location} does not exist")
    if kind == "PEM":
        _load_chain(context, location, get("ssl.key.password"), listener)
    elif kind == "PKCS12":
        pem = _pkcs12_to_pem(location, get("ssl.keystore.password"), listener)
        with _temporary_pem(pem) as path:
            _load_chain(context, path, None, listener)
    else:
        raise ListenerError(
            f"listener {listener}: ssl.keystore.type {kind} is not supported: use PEM or PKCS12 "
            "(keytool -importkeystore -deststoretype PKCS12 converts a JKS keystore)"
        )


def _load_chain(context: ssl.SSLContext, path: str, password: str | None, listener: str) -> None:
    try:
        context.load_cert_chain(path, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise ListenerError(
            f"listener {listener}: cannot load the key and certificate chain: {exc} (a PEM "
            "keystore holds the private key, encrypted with ssl.key.password or not, and the "
            "certificates)"
        ) from None


def _load_truststore(context: ssl.SSLContext, get: _Get, listener: str) -> None:
    kind = (get("ssl.truststore.type") or "JKS").upper()
    location = get("ssl.truststore.location")
    inline = get("ssl.truststore.certificates")
    try:
        if inline:
            context.load_verify_locations(cadata=inline)
        elif location:
            if kind == "PKCS12":
                context.load_verify_locations(
                    cadata=_pkcs12_certificates(location, get("ssl.truststore.password"), listener)
                )
            elif kind == "PEM":
                context.load_verify_locations(cafile=location)
            else:
                raise ListenerError(
                    f"listener {listener}: ssl.truststore.type {kind} is not supported: use PEM "
                    "or PKCS12"
                )
    except (ssl.SSLError, OSError) as exc:
        raise ListenerError(f"listener {listener}: cannot load the truststore: {exc}") from None


def _pkcs12(location: str, password: str | None, listener: str) -> tuple[Any, Any, list[Any]]:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        with open(location, "rb") as handle:
            key, cert, extra = pkcs12.load_key_and_certificates(
                handle.read(), password.encode() if password else None
            )
    except (ValueError, OSError) as exc:
        raise ListenerError(f"listener {listener}: cannot read PKCS12 {location}: {exc}") from None
    return key, cert, list(extra)


def _pkcs12_to_pem(location: str, password: str | None, listener: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key, cert, extra = _pkcs12(location, password, listener)
    if key is None or cert is None:
        raise ListenerError(f"listener {listener}: {location} holds no private key and certificate")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for certificate in [cert, *extra]:
        pem += certificate.public_bytes(serialization.Encoding.PEM)
    return pem.decode()


def _pkcs12_certificates(location: str, password: str | None, listener: str) -> str:
    from cryptography.hazmat.primitives import serialization

    _, cert, extra = _pkcs12(location, password, listener)
    certs = [c for c in [cert, *extra] if c is not None]
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


@contextlib.contextmanager
def _temporary_pem(text: str) -> Iterator[str]:
    """OpenSSL loads keys from files only: a private file, removed once loaded."""
    handle, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        yield path
    finally:
        os.unlink(path)
