"""Who a client is, in the terms every part of nerve shares: Kafka's principals.

The broker authenticates clients (TLS certificates, SASL) and names them here; the registry
and the console are to check the same principals. Depends on nothing else in nerve.
"""

from nerve.security.principal import ANONYMOUS, KafkaPrincipal

__all__ = ["ANONYMOUS", "KafkaPrincipal"]
