"""Observability of running services against a real broker (nerve.testing.Platform): Prometheus
metrics scraped over HTTP, OpenTelemetry spans linked through ``traceparent``, JSON log lines
carrying the correlation id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from nerve.service import Event, Meta, Service, envelope, logs
from nerve.service.observability import (
    NULL_OBSERVER,
    CompositeObserver,
    LogContextObserver,
    MetricsObserver,
    Observer,
    TracingObserver,
    combine,
    start_metrics_server,
)
from nerve.service.runtime import ServiceRunner
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


def run_observed(platform: Platform, service: Service, observer: Observer) -> ServiceRunner:
    [runner] = platform.run(service, observer=observer)
    return runner


def wait_for(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


Sample = tuple[str, frozenset[tuple[str, str]]]


def samples(text: str) -> dict[Sample, float]:
    """Prometheus text exposition: (name, labels) -> value."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            name, _, labels = sample.partition("{")
            found[name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels))] = float(value)
    return found


def sample(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


class Order(Event, topic="t10.orders", key="id"):
    id: str
    qty: int


class Packed(Event, topic="t10.packed", key="id"):
    id: str


def test_metrics_count_events_errors_and_latency_over_http(platform: Platform) -> None:
    packing = Service("t10-packing")

    @packing.on(Order, retries=1, backoff_s=0.01)  # two attempts
    def pack(event: Order) -> Packed:
        if event.qty < 0:
            raise ValueError("negative quantity")
        return Packed(id=event.id)

    metrics = MetricsObserver()
    port = start_metrics_server(metrics, 0, "127.0.0.1")
    runner = run_observed(platform, packing, metrics)
    for i, qty in enumerate((1, 2, -1, 3)):
        platform.emit(Order(id=f"o{i}", qty=qty))
    platform.expect(Packed, count=3)
    wait_for(lambda: len(platform.read("t10.orders.dlq")) == 1)

    async def report_lag() -> None:
        assert runner.consumer is not None
        runner._report_lag(runner.consumer)

    asyncio.run_coroutine_threadsafe(report_lag(), platform.service_loop).result(10)
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200
    found = samples(scraped.text)
    by_topic = {"service": "t10-packing", "topic": "t10.orders"}
    by_handler = {"service": "t10-packing", "handler": packing.handlers[0].name}
    assert found[sample("nerve_events_consumed_total", **by_topic)] == 4
    assert (
        found[sample("nerve_events_emitted_total", service="t10-packing", topic="t10.packed")] == 3
    )
    assert found[sample("nerve_handler_errors_total", **by_handler)] == 2  # both attempts of o2
    assert found[sample("nerve_dead_letters_total", **by_topic)] == 1
    assert found[sample("nerve_handler_seconds_count", **by_handler)] == 3
    assert found[sample("nerve_handler_seconds_bucket", **by_handler, le="+Inf")] == 3
    assert found[sample("nerve_handler_seconds_bucket", **by_handler, le="10.0")] == 3
    assert 0 < found[sample("nerve_handler_seconds_sum", **by_handler)] < 3
    lags = [v for (name, _), v in found.items() if name == "nerve_consumer_lag"]
    assert lags and all(v == 0 for v in lags)  # every record handled
    platform.stop_services()


class Charged(Event, topic="t11.charged", key="id"):
    id: str


class Receipt(Event, topic="t11.receipts", key="id"):
    id: str


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_handler_span_continues_the_trace_of_its_event_and_of_what_it_emits(
    platform: Platform, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    billing = Service("t11-billing")

    @billing.on(Charged, retries=1, backoff_s=0.01)  # two attempts
    def receipt(event: Charged) -> Receipt:
        if event.id == "bad":
            raise ValueError("cannot bill")
        return Receipt(id=event.id)

    run_observed(platform, billing, TracingObserver(provider))
    charged = Charged(id="c1")
    charged.meta.traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    platform.emit(charged)
    platform.emit(Charged(id="bad"))
    [out] = platform.expect(Receipt)
    wait_for(lambda: len(exporter.get_finished_spans()) == 2)

    good, bad = sorted(exporter.get_finished_spans(), key=lambda s: s.status.is_ok, reverse=True)
    assert good.name == "t11.charged process" and good.kind is SpanKind.CONSUMER
    assert good.parent is not None and good.parent.is_remote
    assert f"{good.parent.trace_id:032x}" == TRACE_ID
    assert f"{good.parent.span_id:016x}" == PARENT_ID
    assert good.attributes is not None
    assert good.attributes["messaging.system"] == "kafka"
    assert good.attributes["messaging.destination.name"] == "t11.charged"
    assert good.attributes["messaging.consumer.group.name"] == "t11-billing"
    assert good.attributes["messaging.message.id"] == charged.meta.id
    assert good.attributes["messaging.kafka.message.offset"] == 0

    # The emitted event's traceparent is the handler span: A -> billing -> Receipt is one trace.
    context = good.get_span_context()
    assert out.meta.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"

    # No traceparent: a new trace; each failed attempt is recorded, the dead letter is an error.
    assert bad.parent is None
    assert bad.status.status_code is StatusCode.ERROR
    assert [e.name for e in bad.events] == ["exception", "exception"]

    # The trace context is written twice: as the Distributed Tracing extension's attribute,
    # which CloudEvents SDKs read, and as the plain W3C header, which Kafka tools read.
    [(_, _, headers)] = platform.read("t11.receipts")
    written = {name: value for name, value in headers}
    assert written["ce_traceparent"] == written["traceparent"] == out.meta.traceparent.encode()

    # An event that carries its trace only in the extension (as an SDK writes it) is followed.
    sdk_trace, sdk_parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    sdk = Charged(id="sdk")
    sdk.meta.source, sdk.meta.type = "/sdk", "t11.charged"
    extension_only = [
        (name, value)
        for name, value in envelope.to_headers(sdk.meta)
        if name not in ("traceparent", "ce_traceparent")
    ]
    extension_only.append(("ce_traceparent", f"00-{sdk_trace}-{sdk_parent}-01".encode()))
    assert platform._producer is not None
    platform._producer.produce(
        "t11.charged", value=b'{"id": "sdk"}', key=b"sdk", headers=extension_only
    )
    platform._producer.flush(10)
    platform.expect(Receipt, where=lambda r: r.id == "sdk")
    wait_for(lambda: len(exporter.get_finished_spans()) == 3)
    followed = exporter.get_finished_spans()[2]
    assert followed.parent is not None
    assert (f"{followed.parent.trace_id:032x}", f"{followed.parent.span_id:016x}") == (
        sdk_trace,
        sdk_parent,
    )
    platform.stop_services()


class Signup(Event, topic="t12.signups", key="user"):
    user: str


def test_log_lines_inside_a_handler_carry_the_correlation_id(platform: Platform) -> None:
    welcome = Service("t12-welcome")

    @welcome.on(Signup)
    async def greet(event: Signup) -> None:
        logging.getLogger("t12.user-code").info("welcoming %s", event.user)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.EventContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    user_logger = logging.getLogger("t12.user-code")
    user_logger.addHandler(handler)
    user_logger.setLevel(logging.INFO)
    try:
        run_observed(platform, welcome, LogContextObserver())
        first = Signup(user="ada")
        first.meta.correlation_id = "journey-42"
        platform.emit(first)
        second = platform.emit(Signup(user="bob"))
        wait_for(lambda: stream.getvalue().count("\n") == 2)
        logging.getLogger("t12.user-code").info("outside")  # not in a handler: no ids
    finally:
        user_logger.removeHandler(handler)
        platform.stop_services()
    ada, bob, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert ada["message"] == "welcoming ada" and ada["level"] == "INFO"
    assert ada["logger"] == "t12.user-code" and ada["time"].endswith("+00:00")
    assert ada["correlation_id"] == "journey-42" and ada["event_id"] == first.meta.id
    assert ada["service"] == "t12-welcome" and ada["handler"] == welcome.handlers[0].name
    assert bob["correlation_id"] == second.meta.id  # the first event of its chain
    assert set(outside) == {"time", "level", "logger", "message"}


def test_json_formatter_writes_explicit_extras_and_exceptions() -> None:
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("e1",), sys.exc_info(),
            extra={"correlation_id": "c9"},
        )  # fmt: skip
    line = json.loads(formatter.format(record))
    assert line["message"] == "failed e1" and line["correlation_id"] == "c9"
    assert "ValueError: boom" in line["exception"] and "service" not in line


def test_composite_calls_only_the_hooks_its_observers_implement() -> None:
    metrics = MetricsObserver()
    composite = combine([metrics, LogContextObserver()])
    assert isinstance(composite, CompositeObserver)
    assert combine([]) is NULL_OBSERVER and combine([metrics]) is metrics
    assert composite._handled == [metrics.handled] and len(composite._handling) == 1
    meta = Meta(id="e1", correlation_id="c1")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    keep.addFilter(logs.EventContextFilter())
    logger = logging.getLogger("t13")
    logger.addHandler(keep)
    try:
        with composite.handling("svc", "h", meta):
            logger.warning("inside")
        logger.warning("after")
    finally:
        logger.removeHandler(keep)
    assert records[0].correlation_id == "c1"  # type: ignore[attr-defined]
    assert not hasattr(records[1], "correlation_id")
    composite.handled("svc", "h", meta, 0.002)
    assert (
        metrics.registry.get_sample_value(
            "nerve_handler_seconds_count", {"service": "svc", "handler": "h"}
        )
        == 1
    )


RUN_SERVICE = textwrap.dedent(
    """
    import logging

    from nerve import Event, Service

    class Asked(Event, topic="t14.asked", key="id"):
        id: str

    echo = Service("t14-echo")

    @echo.on(Asked)
    def answer(event: Asked) -> None:
        logging.getLogger("t14").info("answering %s", event.id)
    """
)


def test_nerve_run_serves_metrics_and_logs_json(platform: Platform, tmp_path: Path) -> None:
    path = tmp_path / "echo.py"
    path.write_text(RUN_SERVICE)
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "run", str(path), "-b", platform.bootstrap,
         "--no-registry", "--metrics-port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("metrics on port "), line
        port = int(line.split()[-1])
        producer = Producer({"bootstrap.servers": platform.bootstrap})
        headers = [("ce_specversion", b"1.0"), ("ce_id", b"q1"), ("ce_source", b"/t"),
                   ("ce_type", b"t14.asked"), ("ce_correlationid", b"flow-7")]  # fmt: skip
        producer.produce("t14.asked", value=b'{"id": "q1"}', key=b"q1", headers=headers)
        producer.flush(10)

        def counted() -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                return False
            return 'nerve_handler_seconds_count{handler="answer",service="t14-echo"} 1.0' in text

        wait_for(counted, timeout=30)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [answering] = [line for line in lines if line["logger"] == "t14"]
    assert answering["message"] == "answering q1" and answering["correlation_id"] == "flow-7"


class Visit(Event, topic="t16.visits", key="user", partitions=4):
    user: str
    n: int


def test_correlation_ids_stay_with_their_event_across_awaits_of_concurrent_partitions(
    platform: Platform,
) -> None:
    """Handlers of four partitions interleave at their awaits; each log line after an await
    must still carry its own event's correlation id (each partition runs in its own context)."""
    visits = Service("t16-visits")

    @visits.on(Visit)
    async def record(event: Visit) -> None:
        await asyncio.sleep(0.001 * (event.n % 5))
        logging.getLogger("t16.user-code").info("visit %d", event.n)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.EventContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    user_logger = logging.getLogger("t16.user-code")
    user_logger.addHandler(handler)
    user_logger.setLevel(logging.INFO)
    sent: dict[int, str] = {}
    try:
        run_observed(platform, visits, LogContextObserver())
        assert platform._producer is not None
        for n in range(40):  # one batch, spread over the four partitions
            event = Visit(user=f"user{n % 8}", n=n)
            meta = event.meta
            meta.source, meta.type = "/test", event.event_type
            sent[n] = meta.id
            platform._producer.produce(
                event.topic,
                value=event.model_dump_json().encode(),
                key=event.record_key(),
                headers=envelope.to_headers(meta),
            )
        platform._producer.flush(10)
        wait_for(lambda: stream.getvalue().count("\n") == 40)
    finally:
        user_logger.removeHandler(handler)
        platform.stop_services()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    wrong = [
        line for line in lines if line["correlation_id"] != sent[int(line["message"].split()[1])]
    ]
    assert not wrong, f"{len(wrong)} of 40 log lines carry another event's correlation id"
