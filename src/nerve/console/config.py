"""The console's settings: where the cluster and the registry are, where to listen, who may
log in, and the bounds that keep one page from reading a whole topic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


class ConsoleConfigError(ValueError):
    """A console setting that does not exist or whose value cannot be used."""


@dataclass
class ConsoleConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    registry_url: str | None = "http://127.0.0.1:8081"
    # The broker's Prometheus metrics (nerve broker/up --metrics-port): sizes, traffic.
    broker_metrics_url: str | None = None
    # Extra librdkafka settings for every client the console makes (security.protocol, ...).
    client_config: dict[str, Any] = field(default_factory=dict)
    # The registry's Basic credentials (user, password); None: none, or those in the URL.
    registry_auth: tuple[str, str] | None = None
    # A bearer token sent to the registry instead (a logged-in user's, authentication=BEARER).
    registry_token: str | None = None
    host: str = "127.0.0.1"  # not served to the network unless told
    port: int = 8080
    # Produce, delete, config changes, offset resets and replays refused (HTTP 403).
    read_only: bool = False
    # Logging in (nerve.console.auth): the registry's settings and users file (Confluent's
    # names), so that one file of ``user: password[,role ...]`` lines serves both. NONE
    # (default): anyone who reaches the port is served.
    authentication_method: str = "NONE"
    authentication_realm: str = "nerve-console"
    authentication_roles: str = "*"
    authentication_skip_paths: str = "/healthz"
    authentication_jaas_file: str = ""
    authentication_users_file: str = ""
    # authentication.method=BEARER: JWTs checked as the registry checks them (the same
    # settings, Confluent Platform's names), the subject claim naming the logged-in user.
    oauthbearer_jwks_endpoint_url: str = ""
    oauthbearer_expected_issuer: str = ""
    oauthbearer_expected_audience: str = ""
    oauthbearer_sub_claim_name: str = "sub"
    oauthbearer_clock_skew_seconds: int = 30
    # Whom the console is to Kafka and the registry when users log in: ``user`` (default)
    # sends each logged-in user's own name and password (SASL with ``user_sasl_mechanism``,
    # Basic to the registry), so the broker's ACLs decide what each sees; ``console`` uses
    # the console's own settings for everyone.
    kafka_principal: str = "user"
    # The SASL mechanism users log in to Kafka with (default: the console's sasl.mechanism).
    user_sasl_mechanism: str = ""
    # Bounds: a page never reads more than this.
    page_records: int = 50  # records a browse page shows
    max_page_records: int = 500
    scan_max_records: int = 1_000_000  # a filter scan stops after reading this many
    scan_max_seconds: float = 30.0  # or after this long
    scan_max_matches: int = 100  # or once it found this many
    trace_max_records: int = 500_000  # a trace reads at most this many records
    tail_max_seconds: float = 600.0  # a live tail ends after this long (the page reopens it)
    request_timeout_s: float = 10.0

    _NAMES = {
        "authentication.method": "authentication_method",
        "authentication.realm": "authentication_realm",
        "authentication.roles": "authentication_roles",
        "authentication.skip.paths": "authentication_skip_paths",
        "authentication.jaas.file": "authentication_jaas_file",
        "authentication.users.file": "authentication_users_file",
        "oauthbearer.jwks.endpoint.url": "oauthbearer_jwks_endpoint_url",
        "oauthbearer.expected.issuer": "oauthbearer_expected_issuer",
        "oauthbearer.expected.audience": "oauthbearer_expected_audience",
        "oauthbearer.sub.claim.name": "oauthbearer_sub_claim_name",
        "oauthbearer.clock.skew.seconds": "oauthbearer_clock_skew_seconds",
        "kafka.principal": "kafka_principal",
        "user.sasl.mechanism": "user_sasl_mechanism",
    }

    def apply(self, settings: Mapping[str, str]) -> None:
        """Set each ``name: value`` (``--config NAME=VALUE``); raises
        :class:`ConsoleConfigError` naming a bad one."""
        known = {f.name for f in fields(self)}
        for name, value in settings.items():
            attr = self._NAMES.get(name)
            if attr is None or attr not in known:
                raise ConsoleConfigError(f"unknown console setting {name!r}")
            if isinstance(getattr(self, attr), int):
                try:
                    setattr(self, attr, int(value))
                except ValueError:
                    raise ConsoleConfigError(f"{name} must be an integer, not {value!r}") from None
                continue
            setattr(self, attr, value.strip())
        if self.kafka_principal not in ("user", "console"):
            raise ConsoleConfigError(
                f"kafka.principal must be user or console, not {self.kafka_principal!r}"
            )

    @property
    def sends_user(self) -> bool:
        """Whether each logged-in user reaches Kafka and the registry as themselves."""
        method = self.authentication_method.strip().upper()
        return method not in ("", "NONE") and self.kafka_principal == "user"

    def as_user(self, name: str, password: str) -> ConsoleConfig:
        """These settings with a user's credentials in place of the console's: SASL to
        Kafka when the console speaks SASL, Basic to the registry."""
        client = dict(self.client_config)
        if str(client.get("security.protocol", "")).upper().startswith("SASL"):
            mechanism = self.user_sasl_mechanism or client.get("sasl.mechanism") or "PLAIN"
            client.update(
                {"sasl.mechanism": mechanism, "sasl.username": name, "sasl.password": password}
            )
        return replace(self, client_config=client, registry_auth=(name, password))

    @property
    def bearer(self) -> bool:
        return self.authentication_method.strip().upper() == "BEARER"

    def check_logins(self) -> None:
        """Raises :class:`ConsoleConfigError` for a login method the Kafka connection cannot
        carry: a user's bearer token reaches Kafka only through SASL OAUTHBEARER."""
        if not (self.bearer and self.sends_user):
            return
        protocol = str(self.client_config.get("security.protocol", "PLAINTEXT")).upper()
        if not protocol.startswith("SASL"):
            raise ConsoleConfigError(
                "authentication.method=BEARER with kafka.principal=user sends each user's "
                "token to Kafka with SASL OAUTHBEARER, so the console's security.protocol must "
                f"be SASL_SSL or SASL_PLAINTEXT, not {protocol} (or set kafka.principal=console)"
            )
        mechanism = self.user_sasl_mechanism.strip().upper()
        if mechanism not in ("", "OAUTHBEARER"):
            raise ConsoleConfigError(
                "authentication.method=BEARER logs users in to Kafka with OAUTHBEARER (their "
                f"token), not user.sasl.mechanism={self.user_sasl_mechanism}"
            )

    def as_bearer(self, name: str, token: str) -> ConsoleConfig:
        """These settings with a user's bearer token in place of the console's credentials:
        SASL OAUTHBEARER with that token to Kafka, ``Authorization: Bearer`` to the
        registry (:meth:`check_logins` has made sure the connection is SASL)."""
        client = {
            k: v
            for k, v in self.client_config.items()
            if k not in ("sasl.username", "sasl.password", "sasl.oauthbearer.config")
            and not k.startswith("sasl.oauthbearer.")
        }
        client.update({"sasl.mechanism": "OAUTHBEARER", "oauth_cb": StaticToken(name, token)})
        return replace(self, client_config=client, registry_auth=None, registry_token=token)

    def kafka(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for one client."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "log_level": 0,
            "client.id": "nerve-console",
            **self.client_config,
            **extra,
        }


class StaticToken:
    """librdkafka's ``oauth_cb`` handing over one logged-in user's token (already validated
    by the console) until it expires; a refreshed token makes a new user console."""

    def __init__(self, principal: str, token: str) -> None:
        import jwt

        self.principal, self.token = principal, token
        claims = jwt.decode(token, options={"verify_signature": False})
        self.expiry_s = float(claims.get("exp", 0))

    def __call__(self, _config: str | None) -> tuple[str, float, str, dict[str, str]]:
        return self.token, self.expiry_s, self.principal, {}
