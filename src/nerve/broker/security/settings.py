"""Security settings as Kafka reads them: a name may be given for one listener
(``listener.name.sasl_ssl.ssl.keystore.location``), for one mechanism on one listener
(``listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config``) or for the whole broker."""

from __future__ import annotations

from collections.abc import Mapping

from nerve.broker.config_defs import BROKER_CONFIGS

# Broker configs this package reads (Kafka's names), besides anything ``listener.name.``-prefixed.
_PREFIXES = ("ssl.", "sasl.", "listener.", "listeners", "advertised.listeners")
NERVE_OWN = frozenset(
    {
        # StandardAuthorizer's own settings (not in Kafka's broker ConfigDef, but Kafka's names).
        "super.users",
        "allow.everyone.if.no.acl.found",
    }
)
OTHER = frozenset(
    {
        "authorizer.class.name",
        "connection.failed.authentication.delay.ms",
        "connections.max.reauth.ms",
        "principal.builder.class",
        "sasl.enabled.mechanisms",
    }
)


def is_security_setting(name: str) -> bool:
    """Whether ``name`` is one of the settings this package owns."""
    if name.startswith("listener.name.") or name in NERVE_OWN or name in OTHER:
        return True
    return name in BROKER_CONFIGS and name.startswith(_PREFIXES)


class SecuritySettings:
    """Read settings with Kafka's listener and mechanism prefixes."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def get(
        self,
        name: str,
        listener: str | None = None,
        mechanism: str | None = None,
        default: str | None = None,
    ) -> str | None:
        if listener is not None:
            prefix = f"listener.name.{listener.lower()}."
            if mechanism is not None:
                value = self.values.get(f"{prefix}{mechanism.lower()}.{name}")
                if value is not None:
                    return value
            value = self.values.get(prefix + name)
            if value is not None:
                return value
        value = self.values.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        definition = BROKER_CONFIGS.get(name)
        return definition.default if definition is not None else None

    def get_list(self, name: str, listener: str | None = None) -> list[str]:
        value = self.get(name, listener) or ""
        return [item.strip() for item in value.split(",") if item.strip()]
