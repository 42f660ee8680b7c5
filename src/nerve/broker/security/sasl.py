"""SASL mechanisms as the broker's side of the exchange: tokens in, tokens out, no I/O.

Each mechanism is a small state machine that ``evaluate``s the client's tokens until it is
``complete`` (then ``principal_name`` says who) or raises :class:`AuthenticationFailed` with
the message Kafka sends (for SCRAM and OAUTHBEARER a fixed text that reveals nothing about
which part was wrong, as Kafka does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Protocol

import scramp

from nerve.security.jwt_tokens import TokenRejected

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS, "OAUTHBEARER")
_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}


class AuthenticationFailed(Exception):
    """The client is refused (SASL_AUTHENTICATION_FAILED with this message); ``detail`` is
    for the broker's log only (which check failed), never sent to the client."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ScramCredential(Protocol):
    @property
    def salt(self) -> bytes: ...
    @property
    def stored_key(self) -> bytes: ...
    @property
    def server_key(self) -> bytes: ...
    @property
    def iterations(self) -> int: ...


class SaslServer(Protocol):
    mechanism: str
    complete: bool
    principal_name: str
    # When the credential stops being valid (epoch ms): an OAuth token's expiry.
    credential_expiry_ms: int | None

    def evaluate(self, token: bytes) -> bytes: ...


CredentialLookup = Callable[[str, str], ScramCredential | None]  # (mechanism, user)


def plain_password_matches(credential: ScramCredential, mechanism: str, password: str) -> bool:
    """Whether ``password`` is the one a SCRAM credential was made from (for PLAIN)."""
    digest = _HASHES[mechanism]
    salted = hashlib.pbkdf2_hmac(
        digest().name, password.encode(), credential.salt, credential.iterations
    )
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    return hmac.compare_digest(digest(client_key).digest(), credential.stored_key)


class PlainServer:
    """RFC 4616: ``[authzid] NUL user NUL password``, checked against the JAAS users
    (``user_NAME="password"``) and then against SCRAM credentials, so one user store serves
    both mechanisms."""

    mechanism = "PLAIN"

    def __init__(self, users: dict[str, str], credentials: CredentialLookup) -> None:
        self.users = users
        self.credentials = credentials
        self.complete = False
        self.principal_name = ""
        self.credential_expiry_ms: int | None = None

    def evaluate(self, token: bytes) -> bytes:
        parts = token.decode("utf-8", "replace").split("\0")
        if len(parts) != 3:
            raise AuthenticationFailed(
                f"Invalid SASL/PLAIN response: expected 3 tokens, got {min(len(parts), 4)}"
            )
        authzid, user, password = parts
        if not user:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise AuthenticationFailed("Authentication failed: password not specified")
        if not self._verify(user, password):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self.principal_name = user
        self.complete = True
        return b""

    def _verify(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        if expected is not None:
            return hmac.compare_digest(expected.encode(), password.encode())
        for mechanism in SCRAM_MECHANISMS:
            credential = self.credentials(mechanism, user)
            if credential is not None:
                return plain_password_matches(credential, mechanism, password)
        return False


def _sasl_name(name: str) -> str:
    """RFC 5802 saslname: ``=2C`` is a comma and ``=3D`` an equals sign."""
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """RFC 5802 through ``scramp``: client-first, server-first, client-final, server-final."""

    def __init__(self, mechanism: str, credentials: CredentialLookup) -> None:
        self.mechanism = mechanism
        self.complete = False
        self.principal_name = ""
        self.credential_expiry_ms: int | None = None
        self._step = 0
        self._user = ""

        def auth_fn(username: str) -> tuple[bytes, bytes, bytes, int] | None:
            credential = credentials(mechanism, _sasl_name(username))
            if credential is None:
                return None
            return (
                credential.salt,
                credential.stored_key,
                credential.server_key,
                credential.iterations,
            )

        self._server = scramp.ScramMechanism(mechanism).make_server(auth_fn)

    def _fail(self, detail: str = "") -> AuthenticationFailed:
        return AuthenticationFailed(
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {self.mechanism}",
            detail,
        )

    def evaluate(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail() from None
        try:
            if self._step == 0:
                self._step = 1
                match = re.search(r"(?:^|,)n=([^,]*)", text)
                self._user = _sasl_name(match.group(1)) if match else ""
                self._server.set_client_first(text)
                return self._server.get_server_first().encode()
            if self._step == 1:
                self._step = 2
                self._server.set_client_final(text)
                final = self._server.get_server_final()
                self.principal_name = self._user
                self.complete = True
                return final.encode()
        except scramp.ScramException as exc:
            raise self._fail(f"user {self._user!r}: {exc}") from None
        raise self._fail()


class OAuthBearerServer:
    """RFC 7628: ``n,,\\x01auth=Bearer <JWT>\\x01\\x01``. The JWT's signature is checked
    against the configured key set, then its expiry, audience and issuer; the principal is
    its subject claim (``sasl.oauthbearer.sub.claim.name``). A refused token gets the
    RFC 7628 error challenge, and the client's reply to it ends the exchange with that error."""

    mechanism = "OAUTHBEARER"

    def __init__(self, validate: Callable[[str], tuple[str, int]]) -> None:
        self.validate = validate
        self.complete = False
        self.principal_name = ""
        self.credential_expiry_ms: int | None = None
        self._error: str | None = None
        self.detail = ""

    def evaluate(self, token: bytes) -> bytes:
        if token == b"\x01" and self._error is not None:
            raise AuthenticationFailed(self._error, self.detail)
        text = token.decode("utf-8", "replace")
        match = re.search(r"\x01auth=Bearer ([^\x01]+)\x01", text)
        if not text.startswith(("n,", "y,")) or match is None:
            raise AuthenticationFailed(
                "Invalid OAUTHBEARER client first message: no auth=Bearer token"
            )
        try:
            subject, expiry_ms = self.validate(match.group(1).strip())
        except TokenRejected as exc:
            self.detail = str(exc)
            self._error = json.dumps({"status": exc.status}, separators=(",", ":"))
            return self._error.encode()
        self.principal_name = subject
        self.credential_expiry_ms = expiry_ms
        self.complete = True
        return b""
