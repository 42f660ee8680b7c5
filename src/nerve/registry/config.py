"""The registry's settings: one typed object, set by name (``NAME=VALUE``) like the broker's.

Names that Confluent Schema Registry also has keep Confluent's name and default; the limits
that protect an instance from hostile or broken input are nerve's own (Confluent bounds request
size and nesting through Jetty and Jackson instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MIB = 1024 * 1024


class RegistryConfigError(ValueError):
    """A setting that does not exist or whose value does not parse."""


@dataclass
class RegistryConfig:
    # A request body larger than this is refused with 413 before it is read in full.
    max_request_bytes: int = 10 * MIB
    # How deeply a schema document may nest (JSON objects and arrays). Jackson, which reads
    # schemas for Confluent, refuses documents deeper than 1000 (StreamReadConstraints).
    max_schema_depth: int = 1000
    # Steps one compatibility check or parse may take (types compared, fields and branches
    # walked); beyond it the request is refused rather than keeping a worker busy.
    max_check_steps: int = 2_000_000
    # Confluent's schema.search.default.limit and schema.search.max.limit: GET /schemas
    # answers at most this many unless a smaller limit is asked for.
    schema_search_default_limit: int = 1000
    schema_search_max_limit: int = 1000
    # HTTP authentication, Confluent's settings (:mod:`nerve.registry.auth`): NONE (default)
    # or BASIC; the realm names the JAAS file's section and the WWW-Authenticate challenge;
    # roles a user must have one of (``*``: any authenticated user); paths served without it.
    authentication_method: str = "NONE"
    authentication_realm: str = "SchemaRegistry"
    authentication_roles: str = "*"
    authentication_skip_paths: str = ""
    # Where the users are (nerve's names; Confluent takes a JAAS file from the JVM's
    # java.security.auth.login.config): a JAAS file whose realm section names a Jetty
    # PropertyFileLoginModule ``file=``, or that users file itself (``user: password,role``).
    authentication_jaas_file: str = ""
    authentication_users_file: str = ""
    # TLS on the HTTP listener (Confluent's names): a PEM file holding the private key and the
    # certificate chain; empty (default): plain HTTP. The key's password if it is encrypted.
    ssl_keystore_location: str = ""
    ssl_keystore_type: str = "PEM"
    ssl_key_password: str = ""
    # Client certificates (mTLS) on the HTTPS listener, Confluent's names:
    # ssl.client.authentication NONE (default), REQUESTED or REQUIRED (ssl.client.auth=true,
    # Confluent's older boolean, is REQUIRED); the CAs they must chain to (a PEM file); how a
    # certificate's subject becomes the principal (Kafka's rules, as the broker's; also
    # under Confluent's confluent.schema.registry.auth.ssl.principal.mapping.rules).
    ssl_client_authentication: str = "NONE"
    ssl_client_auth: str = ""
    ssl_truststore_location: str = ""
    ssl_truststore_type: str = "PEM"
    ssl_principal_mapping_rules: str = "DEFAULT"
    # Per-subject rights (:mod:`nerve.registry.acls`), Confluent's settings: the ACL
    # authorizer's class name (or ``acl``) turns them on; the topic they are kept in
    # (default ``<kafkastore.topic>_acl``).
    confluent_schema_registry_authorizer_class: str = ""
    confluent_schema_registry_acl_topic: str = ""
    # authentication.method=BEARER: JWTs checked against this key set (file:// or https://),
    # with these claims (Confluent Platform's OAuth settings); the subject claim names the
    # principal. The clock skew allowed on exp and nbf is nerve's (30 s, as the broker's).
    oauthbearer_jwks_endpoint_url: str = ""
    oauthbearer_expected_issuer: str = ""
    oauthbearer_expected_audience: str = ""
    oauthbearer_sub_claim_name: str = "sub"
    oauthbearer_clock_skew_seconds: int = 30

    _NAMES = {
        "max.request.bytes": "max_request_bytes",
        "max.schema.depth": "max_schema_depth",
        "max.check.steps": "max_check_steps",
        "schema.search.default.limit": "schema_search_default_limit",
        "schema.search.max.limit": "schema_search_max_limit",
        "authentication.method": "authentication_method",
        "authentication.realm": "authentication_realm",
        "authentication.roles": "authentication_roles",
        "authentication.skip.paths": "authentication_skip_paths",
        "authentication.jaas.file": "authentication_jaas_file",
        "authentication.users.file": "authentication_users_file",
        "ssl.keystore.location": "ssl_keystore_location",
        "ssl.keystore.type": "ssl_keystore_type",
        "ssl.key.password": "ssl_key_password",
        "ssl.client.authentication": "ssl_client_authentication",
        "ssl.client.auth": "ssl_client_auth",
        "ssl.truststore.location": "ssl_truststore_location",
        "ssl.truststore.type": "ssl_truststore_type",
        "ssl.principal.mapping.rules": "ssl_principal_mapping_rules",
        "confluent.schema.registry.auth.ssl.principal.mapping.rules": (
            "ssl_principal_mapping_rules"
        ),
        "confluent.schema.registry.authorizer.class": (
            "confluent_schema_registry_authorizer_class"
        ),
        "confluent.schema.registry.acl.topic": "confluent_schema_registry_acl_topic",
        "oauthbearer.jwks.endpoint.url": "oauthbearer_jwks_endpoint_url",
        "oauthbearer.expected.issuer": "oauthbearer_expected_issuer",
        "oauthbearer.expected.audience": "oauthbearer_expected_audience",
        "oauthbearer.sub.claim.name": "oauthbearer_sub_claim_name",
        "oauthbearer.clock.skew.seconds": "oauthbearer_clock_skew_seconds",
    }

    def apply_pairs(self, pairs: list[str]) -> None:
        """``["name=value", ...]`` as given on the command line (``--config``)."""
        settings: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                raise RegistryConfigError(f"expected NAME=VALUE, got {pair!r}")
            settings[name.strip()] = value.strip()
        self.apply(settings)

    def apply(self, settings: Mapping[str, str]) -> None:
        """Set each ``name: value``; raises :class:`RegistryConfigError` naming a bad one."""
        known = {f.name for f in fields(self)}
        for name, value in settings.items():
            attr = self._NAMES.get(name)
            if attr is None or attr not in known:
                raise RegistryConfigError(f"unknown registry setting {name!r}")
            if isinstance(getattr(self, attr), str):
                setattr(self, attr, value)
                continue
            try:
                number = int(value)
            except ValueError:
                raise RegistryConfigError(f"{name} must be an integer, not {value!r}") from None
            if number < 1:
                raise RegistryConfigError(f"{name} must be at least 1, not {number}")
            setattr(self, attr, number)

    @property
    def client_authentication(self) -> str:
        """NONE, REQUESTED or REQUIRED: whether the HTTPS listener asks for client
        certificates; raises :class:`RegistryConfigError` for another value."""
        legacy = self.ssl_client_auth.strip().lower()
        if legacy not in ("", "true", "false"):
            raise RegistryConfigError(f"ssl.client.auth must be true or false, not {legacy!r}")
        value = self.ssl_client_authentication.strip().upper() or "NONE"
        if value not in ("NONE", "REQUESTED", "REQUIRED"):
            raise RegistryConfigError(
                "ssl.client.authentication must be NONE, REQUESTED or REQUIRED, not "
                f"{self.ssl_client_authentication!r}"
            )
        if legacy == "true" and value == "NONE":
            return "REQUIRED"
        return value
