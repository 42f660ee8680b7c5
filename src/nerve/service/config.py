"""Where services connect: one typed object, filled from the environment by default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nerve.security import client_settings

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _environment_bootstrap() -> str:
    return (
        os.environ.get("NERVE_BOOTSTRAP_SERVERS")
        or client_settings.from_environment().get("bootstrap.servers")
        or DEFAULT_BOOTSTRAP
    )


def _environment_settings() -> dict[str, Any]:
    """Security and other librdkafka settings from NERVE_CLIENT_PROPERTIES and NERVE_KAFKA_*."""
    settings: dict[str, Any] = client_settings.from_environment()
    settings.pop("bootstrap.servers", None)
    return settings


@dataclass
class RunConfig:
    """Where a service connects. ``client_config`` goes to every client it makes (producer,
    consumers, admin, tables, streams, projections, the catalog): by default the settings of
    the environment (``NERVE_KAFKA_SECURITY_PROTOCOL=SASL_SSL``, ..., see
    nerve.security.client_settings)."""

    bootstrap_servers: str = field(default_factory=_environment_bootstrap)
    # None: do not register schemas (a cluster without a registry)
    registry_url: str | None = field(
        default_factory=lambda: (
            os.environ.get("NERVE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081") or None
        )
    )
    client_config: dict[str, Any] = field(default_factory=_environment_settings)
    batch_size: int = 500
    # Where streams keep their local state (RocksDB per task); None: .nerve/state under the
    # working directory.
    state_dir: str | None = field(default_factory=lambda: os.environ.get("NERVE_STATE_DIR"))
    # Streams' tables over HTTP (GET /tables/<name>/<key>); None: not served.
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    poll_timeout_s: float = 0.1
    # At-least-once: how often the emits of the batches handled meanwhile are awaited and their
    # offsets stored (also whenever the input pauses and before a partition leaves); 0: after
    # every batch. Exactly-once commits a transaction per batch regardless.
    commit_interval_s: float = 0.1
    # Where this process serves its Prometheus metrics (nerve run --metrics-port), announced in
    # the catalog so that the console can read them.
    metrics_url: str | None = None

    def kafka(self, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "log_level": 3,
            **self.client_config,
            **extra,
        }
