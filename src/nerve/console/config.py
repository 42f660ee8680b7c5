"""The console's settings: where the cluster and the registry are, where to listen, and the
bounds that keep one page from reading a whole topic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ConsoleConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    registry_url: str | None = "http://127.0.0.1:8081"
    # The broker's Prometheus metrics (nerve broker/up --metrics-port): sizes, traffic.
    broker_metrics_url: str | None = None
    # Extra librdkafka settings for every client the console makes (security.protocol, ...).
    client_config: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"  # not served to the network unless told
    port: int = 8080
    # Produce, delete, config changes, offset resets and replays refused (HTTP 403).
    read_only: bool = False
    # Bounds: a page never reads more than this.
    page_records: int = 50  # records a browse page shows
    max_page_records: int = 500
    scan_max_records: int = 1_000_000  # a filter scan stops after reading this many
    scan_max_seconds: float = 30.0  # or after this long
    scan_max_matches: int = 100  # or once it found this many
    trace_max_records: int = 500_000  # a trace reads at most this many records
    tail_max_seconds: float = 600.0  # a live tail ends after this long (the page reopens it)
    request_timeout_s: float = 10.0

    def kafka(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for one client."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "log_level": 0,
            "client.id": "nerve-console",
            **self.client_config,
            **extra,
        }
