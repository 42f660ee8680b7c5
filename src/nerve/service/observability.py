"""What a running service tells the outside: metrics, traces, structured logs.

``Observer`` is the runtime's only window for it: the runtime calls these hooks, an observer
decides what to record. The base class records nothing. ``MetricsObserver`` keeps Prometheus
metrics, ``TracingObserver`` makes OpenTelemetry spans linked through ``traceparent``,
``LogContextObserver`` puts the event's ids on log records (``logs``); ``combine`` runs several.
prometheus_client and OpenTelemetry are imported only by the observers that use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from nerve.service import logs
from nerve.service.events import Meta

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider
    from prometheus_client import CollectorRegistry


class Observer:
    """Hooks called by ServiceRunner; every method must be cheap (it runs per event)."""

    def started(self, service: Any) -> None:
        """The service joined its group and is about to consume."""

    @contextmanager
    def handling(self, service: str, handler: str, meta: Meta) -> Iterator[None]:
        """Around one handler call (all its attempts); ``meta`` is the triggering event's."""
        yield

    def handled(self, service: str, handler: str, meta: Meta, seconds: float) -> None:
        """A handler call succeeded after ``seconds``."""

    def failed(self, service: str, handler: str, meta: Meta, error: BaseException) -> None:
        """A handler attempt raised."""

    def dead_lettered(self, service: str, topic: str, meta: Meta | None, error: Any) -> None:
        """A record went to the dead-letter topic."""

    def consumed(self, service: str, topic: str, count: int) -> None:
        """``count`` records of ``topic`` came in (per batch)."""

    def emitted(self, service: str, topic: str, meta: Meta) -> None:
        """An event is being sent; ``meta`` may still be changed (e.g. its traceparent)."""

    def lag(self, service: str, topic: str, partition: int, records: int) -> None:
        """The consumer's lag on one partition, from time to time."""


NULL_OBSERVER = Observer()


_NOTHING = nullcontext()


class _Children(dict[tuple[str, ...], Any]):
    """A metric's children by label values: ``labels()`` (a lock and a lookup) once per key."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, key: tuple[str, ...]) -> Any:
        child = self[key] = self.metric.labels(*key)
        return child


# Handlers mostly take well under a millisecond: prometheus_client's defaults start at 5 ms.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
)  # fmt: skip


class MetricsObserver(Observer):
    """Prometheus metrics in a registry of its own (``registry``), served by
    ``start_metrics_server``:

    - ``nerve_events_consumed_total{service,topic}``, ``nerve_events_emitted_total{service,topic}``
    - ``nerve_handler_seconds{service,handler}``: successful handler calls (the last attempt)
    - ``nerve_handler_errors_total{service,handler}``: failed attempts, retried or not
    - ``nerve_dead_letters_total{service,topic}``: records sent to the topic's dead letters
    - ``nerve_consumer_lag{service,topic,partition}``: records behind the partition's end
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        by_topic, by_handler = ("service", "topic"), ("service", "handler")
        self._consumed = _Children(
            Counter(
                "nerve_events_consumed",
                "Records read from Kafka.",
                by_topic,
                registry=self.registry,
            )
        )
        self._emitted = _Children(
            Counter("nerve_events_emitted", "Events sent.", by_topic, registry=self.registry)
        )
        self._errors = _Children(
            Counter(
                "nerve_handler_errors",
                "Handler attempts that raised.",
                by_handler,
                registry=self.registry,
            )
        )
        self._dead_letters = _Children(
            Counter(
                "nerve_dead_letters",
                "Records sent to a dead-letter topic.",
                by_topic,
                registry=self.registry,
            )
        )
        self._seconds = _Children(
            Histogram(
                "nerve_handler_seconds",
                "Duration of successful handler calls.",
                by_handler,
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
        )
        self._lag = _Children(
            Gauge(
                "nerve_consumer_lag",
                "Records between the consumer's position and the partition's end.",
                ("service", "topic", "partition"),
                registry=self.registry,
            )
        )

    def handling(  # type: ignore[override]
        self, service: str, handler: str, meta: Meta
    ) -> AbstractContextManager[None]:
        return _NOTHING  # the base's generator would cost more than all the metrics of a call

    def handled(self, service: str, handler: str, meta: Meta, seconds: float) -> None:
        self._seconds[service, handler].observe(seconds)

    def failed(self, service: str, handler: str, meta: Meta, error: BaseException) -> None:
        self._errors[service, handler].inc()

    def dead_lettered(self, service: str, topic: str, meta: Meta | None, error: Any) -> None:
        self._dead_letters[service, topic].inc()

    def consumed(self, service: str, topic: str, count: int) -> None:
        self._consumed[service, topic].inc(count)

    def emitted(self, service: str, topic: str, meta: Meta) -> None:
        self._emitted[service, topic].inc()

    def lag(self, service: str, topic: str, partition: int, records: int) -> None:
        self._lag[service, topic, str(partition)].set(records)


def start_metrics_server(observer: MetricsObserver, port: int = 0, addr: str = "0.0.0.0") -> int:
    """Serve ``observer``'s metrics at ``http://addr:port/metrics`` from a daemon thread;
    port 0 takes a free one. Returns the bound port."""
    from prometheus_client import start_http_server

    server, _ = start_http_server(port, addr, registry=observer.registry)
    return int(server.server_port)


class TracingObserver(Observer):
    """An OpenTelemetry CONSUMER span per handler call, ``"{topic} process"``, child of the
    triggering event's ``traceparent``; the events the call emits carry the span's context in
    their own ``traceparent``, so a chain of services is one trace.

    The span is the current OpenTelemetry span while the handler runs: spans the handler starts
    (or its instrumented clients do) are its children. Without ``tracer_provider``, the global
    one (set by the application or ``opentelemetry-instrument``).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = trace.get_tracer("nerve.service", tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()
        # The open span of each handler call, by (service, event id): emitted() finds its
        # cause's span through the emitted event's causation id.
        self._spans: dict[tuple[str, str], Span] = {}

    @contextmanager
    def handling(self, service: str, handler: str, meta: Meta) -> Iterator[None]:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind

        # Not the current context as parent: a handler's trace is the one its event carries.
        parent = context.Context()
        if meta.traceparent:
            carrier = {"traceparent": meta.traceparent}
            if meta.tracestate:
                carrier["tracestate"] = meta.tracestate
            parent = self._propagator.extract(carrier, context=parent)
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": meta.topic or "",
            "messaging.consumer.group.name": service,
            "messaging.message.id": meta.id,
            "nerve.handler": handler,
        }
        if meta.partition is not None:
            attributes["messaging.destination.partition.id"] = str(meta.partition)
        if meta.offset is not None:
            attributes["messaging.kafka.message.offset"] = meta.offset
        if meta.correlation_id:
            attributes["messaging.message.conversation_id"] = meta.correlation_id
        span = self._tracer.start_span(
            f"{meta.topic} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        key = (service, meta.id)
        self._spans[key] = span
        # Restored by value, not detached by token: a handler that suspended may finish in
        # another context than the one it started in (see logs.handling_context).
        previous = context.get_current()
        context.attach(trace.set_span_in_context(span, parent))
        try:
            yield
        finally:
            context.attach(previous)
            self._spans.pop(key, None)
            span.end()

    def failed(self, service: str, handler: str, meta: Meta, error: BaseException) -> None:
        span = self._spans.get((service, meta.id))
        if span is not None:
            span.record_exception(error)

    def dead_lettered(self, service: str, topic: str, meta: Meta | None, error: Any) -> None:
        span = None if meta is None else self._spans.get((service, meta.id))
        if span is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {error!r}"))

    def emitted(self, service: str, topic: str, meta: Meta) -> None:
        cause = meta.causation_id
        span = None if cause is None else self._spans.get((service, cause))
        if span is None:
            return
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        if "traceparent" in carrier:  # an invalid span (tracing off) keeps the inherited one
            meta.traceparent = carrier["traceparent"]
            meta.tracestate = carrier.get("tracestate")


def tracing_configured() -> bool:
    """Whether the process has a real tracer provider (else spans would go nowhere)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class LogContextObserver(Observer):
    """Puts the triggering event's ids on every log record of a handler call (``logs``)."""

    def handling(  # type: ignore[override]
        self, service: str, handler: str, meta: Meta
    ) -> AbstractContextManager[None]:
        return logs.handling_context(service, handler, meta)


class CompositeObserver(Observer):
    """Several observers at once; each hook calls only the observers that implement it."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = list(observers)

        def implementing(name: str) -> list[Any]:
            nothing = [getattr(Observer, name)]
            if name == "handling":
                nothing.append(MetricsObserver.handling)  # a cheaper nothing, still nothing
            return [
                getattr(o, name) for o in self.observers if getattr(type(o), name) not in nothing
            ]

        self._started = implementing("started")
        self._handling = implementing("handling")
        self._handled = implementing("handled")
        self._failed = implementing("failed")
        self._dead_lettered = implementing("dead_lettered")
        self._consumed = implementing("consumed")
        self._emitted = implementing("emitted")
        self._lag = implementing("lag")

    def started(self, service: Any) -> None:
        for hook in self._started:
            hook(service)

    def handling(  # type: ignore[override]
        self, service: str, handler: str, meta: Meta
    ) -> AbstractContextManager[None]:
        if len(self._handling) == 1:
            return self._handling[0](service, handler, meta)
        if not self._handling:
            return _NOTHING
        return self._nested(service, handler, meta)

    @contextmanager
    def _nested(self, service: str, handler: str, meta: Meta) -> Iterator[None]:
        with ExitStack() as stack:
            for hook in self._handling:
                stack.enter_context(hook(service, handler, meta))
            yield

    def handled(self, service: str, handler: str, meta: Meta, seconds: float) -> None:
        for hook in self._handled:
            hook(service, handler, meta, seconds)

    def failed(self, service: str, handler: str, meta: Meta, error: BaseException) -> None:
        for hook in self._failed:
            hook(service, handler, meta, error)

    def dead_lettered(self, service: str, topic: str, meta: Meta | None, error: Any) -> None:
        for hook in self._dead_lettered:
            hook(service, topic, meta, error)

    def consumed(self, service: str, topic: str, count: int) -> None:
        for hook in self._consumed:
            hook(service, topic, count)

    def emitted(self, service: str, topic: str, meta: Meta) -> None:
        for hook in self._emitted:
            hook(service, topic, meta)

    def lag(self, service: str, topic: str, partition: int, records: int) -> None:
        for hook in self._lag:
            hook(service, topic, partition, records)


def combine(observers: Iterable[Observer]) -> Observer:
    """One observer for all of ``observers``: ``NULL_OBSERVER`` for none (the runtime then skips
    every hook), the observer itself for one."""
    chosen = list(observers)
    if not chosen:
        return NULL_OBSERVER
    if len(chosen) == 1:
        return chosen[0]
    return CompositeObserver(chosen)
