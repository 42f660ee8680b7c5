"""Health: the broker, the registry and the services up or down, with the lag of every
service's group and, where a service serves Prometheus metrics (its catalog record names the
URL), its error and dead-letter counts. Every probe has a short timeout: a page about what is
down must not hang on it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError, reason

PROBE_TIMEOUT_S = 3.0


@dataclass
class Probe:
    name: str
    up: bool
    detail: str
    ms: float


@dataclass
class ServiceHealth:
    name: str
    up: bool
    state: str
    members: int
    lag: int | None
    metrics_url: str | None = None
    consumed: float | None = None
    errors: float | None = None
    dead_letters: float | None = None
    detail: str = ""


@dataclass
class Health:
    broker: Probe
    registry: Probe | None
    services: list[ServiceHealth] = field(default_factory=list)
    catalog_error: str | None = None
    broker_metrics: Any = None  # metrics.BrokerNumbers, when the broker's URL is known
    broker_metrics_error: str | None = None


def _timed(name: str, check: Any) -> Probe:
    started = time.monotonic()
    try:
        detail = check()
        return Probe(name, True, detail, (time.monotonic() - started) * 1000)
    except Exception as exc:
        text = exc.message if isinstance(exc, ConsoleError) else reason(exc)
        return Probe(name, False, text, (time.monotonic() - started) * 1000)


def broker(cluster: Cluster) -> Probe:
    def check() -> str:
        described = cluster.admin.describe_cluster(request_timeout=PROBE_TIMEOUT_S).result(
            timeout=PROBE_TIMEOUT_S
        )
        nodes = ", ".join(f"{n.host}:{n.port}" for n in described.nodes)
        return f"cluster {described.cluster_id}: {len(described.nodes)} broker(s) ({nodes})"

    return _timed("Kafka", check)


def registry(cluster: Cluster) -> Probe | None:
    if not cluster.has_registry:
        return None
    import httpx

    def check() -> str:
        response = httpx.get(f"{cluster.config.registry_url}/subjects", timeout=PROBE_TIMEOUT_S)
        response.raise_for_status()
        return f"{len(response.json())} subject(s) at {cluster.config.registry_url}"

    return _timed("Schema registry", check)


def services(cluster: Cluster, catalog: dict[str, dict[str, Any]]) -> list[ServiceHealth]:
    """A service is up when its consumer group has members; its lag from committed offsets."""
    from nerve.console import groups

    out = []
    names = sorted(catalog)
    described: dict[str, Any] = {}
    if names:
        futures = cluster.admin.describe_consumer_groups(
            [catalog[n].get("group") or n for n in names], request_timeout=PROBE_TIMEOUT_S
        )
        for group, future in futures.items():
            try:
                described[group] = future.result(timeout=PROBE_TIMEOUT_S)
            except Exception:
                described[group] = None
    for name in names:
        record = catalog[name]
        group = record.get("group") or name
        found = described.get(group)
        members = len(found.members) if found is not None else 0
        state = found.state.name.lower() if found is not None and found.state else "unknown"
        handles = bool(record.get("consumes"))
        lag = None
        if handles:
            try:
                lag = groups.describe(cluster, group).lag
            except ConsoleError:
                lag = None
        health = ServiceHealth(
            name,
            members > 0 or not handles,
            state,
            members,
            lag,
            record.get("metrics"),
        )
        if not handles:
            health.detail = "consumes nothing (no group to watch)"
        if health.metrics_url:
            _metrics(health)
        out.append(health)
    return out


def _metrics(health: ServiceHealth) -> None:
    from nerve.console import metrics

    assert health.metrics_url is not None
    try:
        found = metrics.fetch(health.metrics_url)
    except ConsoleError as exc:
        health.detail = exc.message
        return
    # A counter without a sample yet (nothing failed) is zero, not unknown.
    health.consumed = found.total("nerve_events_consumed_total") or 0.0
    health.errors = found.total("nerve_handler_errors_total") or 0.0
    health.dead_letters = found.total("nerve_dead_letters_total") or 0.0


def check(cluster: Cluster, catalog: Any) -> Health:
    from nerve.console import metrics

    result = Health(broker(cluster), registry(cluster))
    url = cluster.config.broker_metrics_url
    if url:
        try:
            result.broker_metrics = metrics.broker(url)
        except ConsoleError as exc:
            result.broker_metrics_error = exc.message
    if result.broker.up:
        try:
            result.services = services(cluster, catalog.services())
        except ConsoleError as exc:
            result.catalog_error = exc.message
    return result
