"""HTTP Basic authentication of the REST API, set up the way Confluent Schema Registry's is, so
the same files and client settings work on both (``basic.auth.user.info=user:password``).

Confluent (rest-utils on Jetty) takes ``authentication.method=BASIC``, ``authentication.realm``
(a section of the JAAS file the JVM is given), ``authentication.roles`` and
``authentication.skip.paths``; the realm's section names Jetty's PropertyFileLoginModule and its
``file=``, whose lines are ``user: password[,role ...]``. nerve reads the same JAAS file
(``authentication.jaas.file``) or the users file itself (``authentication.users.file``).
Passwords are plain or ``MD5:<hex>`` (Jetty's forms); Jetty's ``OBF:`` and ``CRYPT:`` are
refused at start rather than never matching.

``authentication.method=BEARER`` takes ``Authorization: Bearer <JWT>`` instead, checked
against a JSON Web Key Set with Confluent Platform's ``oauthbearer.*`` settings (its
``AuthenticationHandler``), the principal being the token's subject.

A request without valid credentials is answered 401 with ``WWW-Authenticate: Basic
realm="..."`` (``Bearer`` for tokens); a user without one of the roles, 403; both with
Confluent's error body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nerve.registry import media
from nerve.registry.config import RegistryConfigError

log = logging.getLogger("nerve.registry")

_SECTION = re.compile(r"([A-Za-z0-9_.\-]+)\s*\{(.*?)\}\s*;", re.DOTALL)
_MODULE = re.compile(r"\s*([A-Za-z0-9_.$]+)\s+(required|requisite|sufficient|optional)\b")
_OPTION = re.compile(r'([A-Za-z0-9_.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


class AuthConfigError(RegistryConfigError):
    """Authentication settings or files that cannot be used; the registry does not start."""


@dataclass(frozen=True)
class User:
    name: str
    password: str  # as written in the file: plain, or MD5:<hex>
    roles: frozenset[str]

    def accepts(self, password: str) -> bool:
        if self.password.startswith("MD5:"):
            given = hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
            return hmac.compare_digest(given, self.password[4:].strip().lower())
        return hmac.compare_digest(password.encode(), self.password.encode())


def read_users(path: Path) -> dict[str, User]:
    """Jetty's users file: ``name: password[,role ...]`` lines (``=`` also separates, as
    java.util.Properties reads them), ``#`` and ``!`` comments."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the users file {path}: {exc.strerror or exc}") from None
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^:=\s]+)\s*[:=\s]\s*(.*)", line)
        if match is None or not match.group(2):
            raise AuthConfigError(f"{path}:{number}: expected 'user: password[,role ...]'")
        name, rest = match.groups()
        password, *roles = (part.strip() for part in rest.split(","))
        if password.startswith(("OBF:", "CRYPT:")):
            raise AuthConfigError(
                f"{path}:{number}: {password.split(':')[0]}: passwords are not supported "
                "(write the password plain or as MD5:<hex>)"
            )
        users[name] = User(name, password, frozenset(r for r in roles if r))
    return users


def users_file_from_jaas(path: Path, realm: str) -> Path:
    """The ``file=`` of the PropertyFileLoginModule in the JAAS file's ``realm`` section."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the JAAS file {path}: {exc.strerror or exc}") from None
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.DOTALL)
    sections = {m.group(1): m.group(2) for m in _SECTION.finditer(text)}
    if realm not in sections:
        found = ", ".join(sections) or "none"
        raise AuthConfigError(
            f"{path} has no section {realm!r} (authentication.realm); sections: {found}"
        )
    body = sections[realm]
    module = _MODULE.match(body)
    if module is None or not module.group(1).endswith("PropertyFileLoginModule"):
        raise AuthConfigError(
            f"{path}: section {realm!r} must use Jetty's PropertyFileLoginModule "
            '(org.eclipse.jetty.jaas.spi.PropertyFileLoginModule required file="...";)'
        )
    options = {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _OPTION.finditer(body, module.end())
    }
    if not options.get("file"):
        raise AuthConfigError(f'{path}: section {realm!r} names no file="..." of users')
    return Path(options["file"])


@dataclass(frozen=True)
class BasicAuth:
    """Who may call the API: the users, the roles one of which a user needs (empty: any
    authenticated user, Confluent's ``*``), and the paths served without asking."""

    realm: str
    users: dict[str, User]
    roles: frozenset[str]
    skip_paths: tuple[str, ...] = ()
    scheme: str = "Basic"

    def skips(self, path: str) -> bool:
        for spec in self.skip_paths:
            if spec.endswith("/*"):
                if path == spec[:-2] or path.startswith(spec[:-1]):
                    return True
            elif path == spec:
                return True
        return False

    def user(self, authorization: str | None) -> User | None:
        """The user an ``Authorization: Basic ...`` header proves to be, else None."""
        given = basic_credentials(authorization)
        if given is None:
            return None
        name, password = given
        found = self.users.get(name)
        if found is None or not found.accepts(password):
            return None
        return found


@dataclass(frozen=True)
class BearerAuth:
    """Who may call the API with ``Authorization: Bearer <JWT>``: tokens signed by a key of
    the configured key set, with the expected issuer and audience, not expired; the principal
    is the token's ``sub`` (or the configured claim). Confluent Platform's OAuth settings
    (``oauthbearer.*``); the validation is the broker's OAUTHBEARER one, so one identity
    provider serves Kafka and the registry."""

    realm: str
    validator: Any  # nerve.security.jwt_tokens.JwtValidator
    skip_paths: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()  # tokens carry no roles: any valid token is let in
    scheme: str = "Bearer"

    def skips(self, path: str) -> bool:
        return BasicAuth(self.realm, {}, self.roles, self.skip_paths).skips(path)

    def user(self, authorization: str | None) -> User | None:
        from nerve.security.jwt_tokens import TokenRejected

        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            subject, _ = self.validator(token.strip())
        except TokenRejected as exc:
            log.info("registry: a bearer token was refused: %s", exc)
            return None
        return User(subject, "", frozenset())


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The name and password an ``Authorization: Basic ...`` header carries, unchecked."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    if not sep:
        return None
    return name, password


class AuthSettings(Protocol):
    """The settings :func:`from_config` reads: the registry's, and the console's, which
    takes the same names so one users file serves both."""

    authentication_method: str
    authentication_realm: str
    authentication_roles: str
    authentication_skip_paths: str
    authentication_jaas_file: str
    authentication_users_file: str


def from_config(config: AuthSettings) -> BasicAuth | BearerAuth | None:
    """The authentication ``config`` asks for (None: NONE, the default); raises
    :class:`AuthConfigError` for a method, file or line that cannot be used."""
    method = config.authentication_method.strip().upper()
    if method in ("", "NONE"):
        return None
    realm = config.authentication_realm.strip()
    skip = tuple(p.strip() for p in config.authentication_skip_paths.split(",") if p.strip())
    if method == "BEARER":
        return _bearer(config, realm, skip)
    if method != "BASIC":
        raise AuthConfigError(
            "authentication.method must be NONE, BASIC or BEARER, not "
            f"{config.authentication_method!r}"
        )
    if config.authentication_users_file:
        users_file = Path(config.authentication_users_file)
    elif config.authentication_jaas_file:
        users_file = users_file_from_jaas(Path(config.authentication_jaas_file), realm)
    else:
        raise AuthConfigError(
            "authentication.method=BASIC needs authentication.jaas.file or "
            "authentication.users.file"
        )
    users = read_users(users_file)
    if not users:
        log.warning("the users file %s has no users; every request is refused", users_file)
    roles = frozenset(r.strip() for r in config.authentication_roles.split(",") if r.strip())
    if "*" in roles or "**" in roles:
        roles = frozenset()
    return BasicAuth(realm, users, roles, skip)


def _bearer(config: AuthSettings, realm: str, skip: tuple[str, ...]) -> BearerAuth:
    """Bearer tokens checked against ``oauthbearer.jwks.endpoint.url`` (read at start)."""
    from nerve.security.jwt_tokens import JwtValidator

    url = getattr(config, "oauthbearer_jwks_endpoint_url", "").strip()
    if not url:
        raise AuthConfigError(
            "authentication.method=BEARER needs oauthbearer.jwks.endpoint.url (the key set "
            "tokens are signed with: file:///path/jwks.json or https://...)"
        )
    audience = [a.strip() for a in getattr(config, "oauthbearer_expected_audience", "").split(",")]
    try:
        validator = JwtValidator(
            url,
            [a for a in audience if a],
            getattr(config, "oauthbearer_expected_issuer", "").strip() or None,
            getattr(config, "oauthbearer_sub_claim_name", "").strip() or "sub",
            int(getattr(config, "oauthbearer_clock_skew_seconds", 30)),
        )
    except Exception as exc:  # an unreadable file or URL, a key set that does not parse
        raise AuthConfigError(f"oauthbearer.jwks.endpoint.url {url}: {exc}") from None
    return BearerAuth(realm, validator, skip)


class BasicAuthMiddleware:
    """ASGI middleware answering 401/403 before any route runs; the user's name is left in
    the scope as ``nerve.principal``."""

    def __init__(self, app: Any, auth: BasicAuth | BearerAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.auth.skips(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = self.auth.user(headers.get("authorization"))
        if user is None:
            challenge = f'{self.auth.scheme} realm="{self.auth.realm}"'
            await _refuse(send, headers, 401, "Unauthorized", [(b"www-authenticate", challenge)])
            return
        if self.auth.roles and not self.auth.roles & user.roles:
            await _refuse(send, headers, 403, "Forbidden", [])
            return
        scope["nerve.principal"] = user.name
        await self.app(scope, receive, send)


async def _refuse(
    send: Any, headers: dict[str, str], status: int, message: str, extra: list[tuple[bytes, str]]
) -> None:
    body = json.dumps({"error_code": status, "message": message}).encode()
    answer_type = media.negotiate(headers.get("accept")) or media.V1_JSON
    response_headers = [
        (b"content-type", answer_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name, value.encode("latin-1")) for name, value in extra),
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
