"""Running the registry: read `_schemas`, then serve HTTP with uvicorn on the caller's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn

from nerve.registry import acls, auth, tls
from nerve.registry.api import build_app
from nerve.registry.config import RegistryConfig, RegistryConfigError
from nerve.registry.registry import Registry
from nerve.registry.schemas_topic import SchemasTopic
from nerve.security.ssl_principal import SslPrincipalMapper

if TYPE_CHECKING:
    from nerve.registry.metrics import RegistryMetrics

log = logging.getLogger("nerve.registry")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling: the nerve command owns SIGINT/SIGTERM
    (under ``nerve up`` the broker shares the process and must shut down too)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RegistryServer:
    def __init__(
        self,
        bootstrap_servers: str,
        host: str = "127.0.0.1",
        port: int = 8081,
        topic: str = "_schemas",
        client_config: dict[str, Any] | None = None,
        config: RegistryConfig | None = None,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.config = config or RegistryConfig()
        self.auth = auth.from_config(self.config)  # a bad setting or file fails here
        self.certificates = self._check_tls()
        self.metrics = metrics
        self.schemas_topic = SchemasTopic(bootstrap_servers, topic, client_config)
        self.acl_topic = self._acl_topic(bootstrap_servers, topic, client_config)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def _acl_topic(
        self, bootstrap_servers: str, topic: str, client_config: dict[str, Any] | None
    ) -> acls.AclTopic | None:
        """The ACL topic to follow when per-subject rights are on; a bad setting fails here."""
        authorizer = self.config.confluent_schema_registry_authorizer_class.strip()
        if not authorizer:
            return None
        if authorizer.lower() != "acl" and authorizer != acls.AUTHORIZER_CLASS:
            raise RegistryConfigError(
                "confluent.schema.registry.authorizer.class must be "
                f"{acls.AUTHORIZER_CLASS} (or acl), not {authorizer!r}: nerve has the ACL "
                "authorizer only"
            )
        config = {"bootstrap.servers": bootstrap_servers, "log_level": 0, **(client_config or {})}
        name = acls.acl_topic(topic, self.config.confluent_schema_registry_acl_topic.strip())
        return acls.AclTopic(config, name)

    def _subjects_of_id(self, schema_id: int) -> set[str] | None:
        """The subjects using a schema id (deleted versions too), None for an unknown id."""
        with self.schemas_topic.lock:
            state = self.schemas_topic.state
            if schema_id not in state.schemas:
                return None
            return {entry.subject for entry in state.uses_of(schema_id, deleted=True)}

    def _check_tls(self) -> SslPrincipalMapper | None:
        """A keystore or truststore that cannot serve TLS fails at construction, before Kafka
        is read; returns the mapping of client certificates to principals when they are
        asked for."""
        location = self.config.ssl_keystore_location
        asked = self.config.client_authentication
        if not location:
            if asked != "NONE":
                raise RegistryConfigError(
                    f"ssl.client.authentication={asked} needs HTTPS (ssl.keystore.location)"
                )
            return None
        if self.config.ssl_keystore_type.strip().upper() != "PEM":
            raise RegistryConfigError(
                f"ssl.keystore.type must be PEM (the key and certificate chain in one file), "
                f"not {self.config.ssl_keystore_type!r}"
            )
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(location, location, self.config.ssl_key_password or None)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryConfigError(f"ssl.keystore.location {location}: {exc}") from None
        if asked == "NONE":
            return None
        truststore = self.config.ssl_truststore_location
        if not truststore:
            raise RegistryConfigError(
                f"ssl.client.authentication={asked} needs ssl.truststore.location (a PEM file "
                "of the CAs client certificates must chain to)"
            )
        if self.config.ssl_truststore_type.strip().upper() != "PEM":
            raise RegistryConfigError(
                f"ssl.truststore.type must be PEM, not {self.config.ssl_truststore_type!r}"
            )
        try:
            context.load_verify_locations(truststore)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryConfigError(f"ssl.truststore.location {truststore}: {exc}") from None
        try:
            return SslPrincipalMapper(self.config.ssl_principal_mapping_rules.strip() or None)
        except ValueError as exc:
            raise RegistryConfigError(f"ssl.principal.mapping.rules: {exc}") from None

    def _client_certificates(self) -> dict[str, Any]:
        """uvicorn's settings asking for client certificates, and its protocol handing them
        to the application (:mod:`nerve.registry.tls`)."""
        if self.certificates is None:
            return {}
        required = self.config.client_authentication == "REQUIRED"
        return {
            "ssl_cert_reqs": ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL,
            "ssl_ca_certs": self.config.ssl_truststore_location,
            "http": tls.protocol_class(),
        }

    async def start(self) -> tuple[str, int]:
        """Read `_schemas` to the end, then accept HTTP; returns the bound address."""
        await asyncio.to_thread(self.schemas_topic.start)
        if self.acl_topic is not None:
            await asyncio.to_thread(self.acl_topic.start)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a response written as head and body
        # waits for the client's delayed ACK (40 ms a read).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        registry = Registry(self.schemas_topic, self.config)
        if self.metrics is not None:
            self.metrics.registry = registry
        config = uvicorn.Config(
            build_app(
                registry,
                self.config,
                self.metrics,
                self.auth,
                acl_store=self.acl_topic.store if self.acl_topic is not None else None,
                subjects_of_id=self._subjects_of_id,
                certificates=self.certificates,
            ),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=self.config.ssl_keystore_location or None,
            ssl_keyfile=self.config.ssl_keystore_location or None,
            ssl_keyfile_password=self.config.ssl_key_password or None,
            **self._client_certificates(),
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        await asyncio.to_thread(self.schemas_topic.close)
        if self.acl_topic is not None:
            await asyncio.to_thread(self.acl_topic.close)
