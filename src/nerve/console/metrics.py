"""Prometheus metrics read by the console: the broker's (``nerve broker --metrics-port``, or
any Kafka exporter using Kafka's names: bytes and messages in and out per topic, log size per
partition, requests) and the services' (``nerve run --metrics-port``, named in the catalog).
Parsed with prometheus-client's own text parser."""

from __future__ import annotations

from dataclasses import dataclass, field

from nerve.console.cluster import ConsoleError

TIMEOUT_S = 3.0


@dataclass
class Samples:
    """Sample values by metric name, each a list of (labels, value)."""

    by_name: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def total(self, name: str) -> float | None:
        found = self.by_name.get(name)
        return sum(v for _, v in found) if found is not None else None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, value in self.by_name.get(name, []):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + value
        return out


def parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.by_name.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def fetch(url: str) -> Samples:
    import httpx

    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConsoleError(f"metrics at {url} did not answer: {exc}", 502) from None
    try:
        return parse(response.text)
    except ValueError as exc:
        raise ConsoleError(f"metrics at {url} are not Prometheus text: {exc}", 502) from None


@dataclass
class BrokerNumbers:
    url: str
    messages_in: float | None
    bytes_in: float | None
    bytes_out: float | None
    requests: float | None
    connections: float | None
    log_bytes: dict[str, float]  # per topic


def broker(url: str) -> BrokerNumbers:
    found = fetch(url)
    return BrokerNumbers(
        url,
        found.total("kafka_server_brokertopicmetrics_messagesin_total"),
        found.total("kafka_server_brokertopicmetrics_bytesin_total"),
        found.total("kafka_server_brokertopicmetrics_bytesout_total"),
        found.total("kafka_network_requestmetrics_requests_total"),
        found.total("kafka_server_socket_server_metrics_connection_count"),
        found.by_label("kafka_log_log_size", "topic"),
    )
