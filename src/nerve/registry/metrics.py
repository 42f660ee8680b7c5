"""The registry's Prometheus metrics: requests and their latency per route, and what it holds.

Confluent's Schema Registry reports per-endpoint rates through JMX (``jersey-metrics``), which
have no Prometheus form of their own, so these are nerve's names (docs/metrics.md):

- ``nerve_registry_requests_total{method,route,code}``: answered requests; ``route`` is the
  route's template (``/subjects/{subject}/versions``), never the path itself, so subjects do
  not multiply the series; a path no route knows is ``unmatched``
- ``nerve_registry_request_seconds{method,route}``: their latency (a histogram)
- ``nerve_registry_schemas{type}``: distinct schemas (ids) by schema type (Confluent's
  ``registered-count``), ``nerve_registry_subjects`` and ``nerve_registry_subject_versions``:
  subjects and versions not soft-deleted

The middleware runs on the event loop, around the routing (it reads the matched route from the
ASGI scope); the counts are read from the registry's state when Prometheus asks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from nerve.registry.registry import Registry

# Registry calls take from a fraction of a millisecond (a cached read by id) to seconds (a
# registration waits for its transaction to commit).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class RegistryMetrics:
    """A prometheus_client collector; ``middleware`` measures the requests of one app."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.registry: Registry | None = None  # set by the server once it exists
        self._requests = Counter(
            "nerve_registry_requests",
            "Requests answered, by method, route template and HTTP status.",
            ("method", "route", "code"),
            registry=None,
        )
        self._seconds = Histogram(
            "nerve_registry_request_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        return _Measured(app, self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._seconds.labels(method, route).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        yield from self._requests.collect()
        yield from self._seconds.collect()
        if self.registry is None:
            return
        topic = self.registry.topic
        by_type: dict[str, int] = {}
        subjects = versions = 0
        with topic.lock:
            state = topic.state
            for content in state.schemas.values():
                by_type[content.schema_type] = by_type.get(content.schema_type, 0) + 1
            for entries in state.subjects.values():
                live = sum(1 for v in entries.values() if not v.deleted)
                versions += live
                subjects += live > 0
        schemas = GaugeMetricFamily(
            "nerve_registry_schemas",
            "Distinct schemas (ids) by schema type (Confluent's registered-count).",
            labels=("type",),
        )
        for schema_type in ("AVRO", "JSON", "PROTOBUF"):
            by_type.setdefault(schema_type, 0)
        for schema_type, count in sorted(by_type.items()):
            schemas.add_metric((schema_type,), count)
        yield schemas
        family = GaugeMetricFamily("nerve_registry_subjects", "Subjects not soft-deleted.")
        family.add_metric((), subjects)
        yield family
        family = GaugeMetricFamily(
            "nerve_registry_subject_versions", "Versions of subjects not soft-deleted."
        )
        family.add_metric((), versions)
        yield family


class _Measured:
    """ASGI middleware: one observation per HTTP request, labelled by the matched route."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it starts one

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)
