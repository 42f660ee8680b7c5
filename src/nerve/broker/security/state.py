"""The broker's security, put together from its settings: listeners and their TLS contexts,
the SASL mechanisms of each listener, SCRAM credentials, and the authorizer with its ACLs."""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from nerve.broker.security import sasl
from nerve.broker.security.acls import AclOperation, Authorizer, ResourceType
from nerve.broker.security.credentials import Credentials
from nerve.broker.security.jaas import JaasError, parse_options, plain_users
from nerve.broker.security.listeners import (
    Listener,
    ListenerError,
    parse_listeners,
    server_context,
)
from nerve.broker.security.session import Session
from nerve.broker.security.settings import SecuritySettings
from nerve.broker.security.store import SECURITY_TOPIC, Key, SecurityStore, Value
from nerve.security.jwt_tokens import JwtValidator
from nerve.security.principal import ANONYMOUS, KafkaPrincipal
from nerve.security.ssl_principal import NoMatchingRule, SslPrincipalMapper, subject_name

if TYPE_CHECKING:
    import asyncio

    from nerve.broker.server import Broker

log = logging.getLogger("nerve.broker")

# Kafka's authorizer (KRaft); the ZooKeeper-era AclAuthorizer is gone from Kafka 4.
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_AUTHORIZERS = (STANDARD_AUTHORIZER, "StandardAuthorizer")


class SecurityError(ValueError):
    """A security setting the broker cannot start with."""


class BrokerSecurity:
    def __init__(self, broker: Broker) -> None:
        config = broker.config
        self.settings = SecuritySettings(config.security)
        try:
            self.listeners: list[Listener] = parse_listeners(
                self.settings,
                config.host,
                config.port,
                (config.advertised_host, config.advertised_port),
            )
        except ListenerError as exc:
            raise SecurityError(str(exc)) from None
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.mappers: dict[str, SslPrincipalMapper] = {}
        self.mechanisms: dict[str, list[str]] = {}
        self.plain_users: dict[str, dict[str, str]] = {}
        self.jwt: dict[str, JwtValidator] = {}
        self.credentials = Credentials()
        self.store = SecurityStore(broker)
        self.authorizer = self._authorizer()
        self.failed_authentication_delay_s = self._failed_authentication_delay()
        for listener in self.listeners:
            self._configure(listener)

    def _failed_authentication_delay(self) -> float:
        """connection.failed.authentication.delay.ms in seconds (Kafka's default, 100 ms)."""
        value = self.settings.get("connection.failed.authentication.delay.ms") or "100"
        try:
            delay = int(value)
        except ValueError:
            delay = -1
        if delay < 0:
            raise SecurityError(
                f"connection.failed.authentication.delay.ms must be a whole number of ms, 0 or "
                f"more, not {value!r}"
            )
        return delay / 1000

    def _authorizer(self) -> Authorizer | None:
        name = (self.settings.get("authorizer.class.name") or "").strip()
        if not name:
            return None
        if name not in _AUTHORIZERS:
            raise SecurityError(
                f"authorizer.class.name {name!r} is not supported: nerve's authorizer is "
                f"Kafka's StandardAuthorizer ({STANDARD_AUTHORIZER})"
            )
        supers = self.settings.get("super.users") or ""
        users = []
        for item in (s.strip() for s in supers.split(";")):
            if not item:
                continue
            try:
                users.append(str(KafkaPrincipal.parse(item)))
            except ValueError as exc:
                raise SecurityError(f"super.users: {exc}") from None
        allow = (self.settings.get("allow.everyone.if.no.acl.found") or "false").lower()
        if allow not in ("true", "false"):
            raise SecurityError(
                f"allow.everyone.if.no.acl.found must be true or false, not {allow!r}"
            )
        return Authorizer(frozenset(users), allow == "true")

    def _configure(self, listener: Listener) -> None:
        name = listener.name
        if listener.uses_tls:
            try:
                self.contexts[name] = server_context(self.settings, name)
            except ListenerError as exc:
                raise SecurityError(str(exc)) from None
            try:
                self.mappers[name] = SslPrincipalMapper(
                    self.settings.get("ssl.principal.mapping.rules", name)
                )
            except ValueError as exc:
                raise SecurityError(f"ssl.principal.mapping.rules: {exc}") from None
        if not listener.uses_sasl:
            return
        mechanisms = [m.upper() for m in self.settings.get_list("sasl.enabled.mechanisms", name)]
        unknown = [m for m in mechanisms if m not in sasl.MECHANISMS]
        if unknown or not mechanisms:
            raise SecurityError(
                f"listener {name}: sasl.enabled.mechanisms {','.join(mechanisms) or '(none)'}: "
                f"nerve offers {', '.join(sasl.MECHANISMS)}"
            )
        self.mechanisms[name] = mechanisms
        if "PLAIN" in mechanisms:
            jaas = self.settings.get("sasl.jaas.config", name, "plain")
            try:
                self.plain_users[name] = plain_users(parse_options(jaas)) if jaas else {}
            except JaasError as exc:
                raise SecurityError(f"listener {name}: {exc}") from None
        if "OAUTHBEARER" in mechanisms:
            url = self.settings.get("sasl.oauthbearer.jwks.endpoint.url", name, "oauthbearer")
            if not url:
                raise SecurityError(
                    f"listener {name}: OAUTHBEARER needs sasl.oauthbearer.jwks.endpoint.url, "
                    "the key set that signs the tokens (file:// or https://)"
                )
            try:
                self.jwt[name] = JwtValidator(
                    url,
                    self.settings.get_list("sasl.oauthbearer.expected.audience", name),
                    self.settings.get("sasl.oauthbearer.expected.issuer", name),
                    self.settings.get("sasl.oauthbearer.sub.claim.name", name) or "sub",
                    int(self.settings.get("sasl.oauthbearer.clock.skew.seconds", name) or 30),
                )
            except Exception as exc:
                raise SecurityError(
                    f"listener {name}: cannot read the key set {url}: {exc}"
                ) from None

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Read the credentials and ACLs kept in the security topic."""

        def apply(key: Key, value: Value) -> None:
            kind = key.get("kind")
            if kind == "scram":
                self.credentials.apply(key, value)
            elif kind == "acl" and self.authorizer is not None:
                self.authorizer.apply(key, value)
            elif kind == "acl":
                self._stored_acls += 1

        self._stored_acls = 0
        self.store.open(apply)
        if self._stored_acls:
            log.warning(
                "%d ACLs are stored but no authorizer is configured (authorizer.class.name): "
                "they are not enforced",
                self._stored_acls,
            )

    @property
    def enabled(self) -> bool:
        return any(l.protocol != "PLAINTEXT" for l in self.listeners) or self.authorizer is not None  # noqa: E741

    # -- connections ----------------------------------------------------------------------------

    def new_session(self, listener: Listener, transport: asyncio.BaseTransport) -> Session:
        """A connection's session; raises PermissionError when its certificate maps to no
        principal (the connection is then closed, as Kafka does)."""
        peer = transport.get_extra_info("peername")
        session = Session(listener, peer[0] if peer else "")
        if listener.uses_sasl:
            session.authenticated = False
        elif listener.uses_tls:
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:
                try:
                    name = self.mappers[listener.name].name(subject_name(der))
                except NoMatchingRule as exc:
                    raise PermissionError(str(exc)) from None
                session.principal = KafkaPrincipal("User", name)
        return session

    def sasl_server(self, session: Session, mechanism: str) -> sasl.SaslServer:
        name = session.listener.name
        if mechanism == "PLAIN":
            return sasl.PlainServer(self.plain_users.get(name, {}), self.credentials.get)
        if mechanism in sasl.SCRAM_MECHANISMS:
            return sasl.ScramServer(mechanism, self.credentials.get)
        return sasl.OAuthBearerServer(self.jwt[name])

    def max_receive_size(self, listener: Listener) -> int:
        """The largest frame an unauthenticated client may send (Kafka's setting)."""
        return int(self.settings.get("sasl.server.max.receive.size", listener.name) or 524288)

    def reauth_ms(self, session: Session) -> int:
        value = self.settings.get(
            "connections.max.reauth.ms", session.listener.name, session.mechanism
        )
        return int(value or 0)

    # -- authorization --------------------------------------------------------------------------

    def authorize(
        self, session: Session, operation: AclOperation, resource: ResourceType, name: str
    ) -> bool:
        authorizer = self.authorizer
        if authorizer is None:
            return True
        if session.generation != authorizer.generation:
            session.decisions.clear()
            session.generation = authorizer.generation
        key = (operation, resource, name)
        decision = session.decisions.get(key)
        if decision is None:
            if resource == ResourceType.TOPIC and name == SECURITY_TOPIC:
                # Salted credentials: for super users only, whatever the ACLs say.
                decision = authorizer.is_super_user(session.principal)
            else:
                decision = authorizer.authorize(
                    session.principal, session.host, operation, resource, name
                )
            if len(session.decisions) < 100_000:
                session.decisions[key] = decision
        return decision


__all__ = ["ANONYMOUS", "BrokerSecurity", "SecurityError"]
