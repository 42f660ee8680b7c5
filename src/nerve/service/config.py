"""Where services connect: one typed object, filled from the environment by default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunConfig:
    bootstrap_servers: str = field(
        default_factory=lambda: os.environ.get("NERVE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    # None: do not register schemas (a cluster without a registry)
    registry_url: str | None = field(
        default_factory=lambda: (
            os.environ.get("NERVE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081") or None
        )
    )
    client_config: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 500
    # Where streams keep their local state (RocksDB per task); None: .nerve/state under the
    # working directory.
    state_dir: str | None = field(default_factory=lambda: os.environ.get("NERVE_STATE_DIR"))
    # Streams' tables over HTTP (GET /tables/<name>/<key>); None: not served.
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    poll_timeout_s: float = 0.1
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
