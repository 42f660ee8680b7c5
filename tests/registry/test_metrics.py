"""The registry's Prometheus metrics, scraped over HTTP after real clients used it; and
`nerve up`, which serves the broker's and the registry's metrics on one port."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests import _ck
from tests._broker import BrokerProcess
from tests._metrics import NerveUp, scrape
from tests._registry import RegistryProcess

REQUESTS = "nerve_registry_requests_total"


def _avro(name: str, *more: str) -> Schema:
    fields = [{"name": "id", "type": "string"}]
    fields += [{"name": field, "type": "string", "default": ""} for field in more]
    return Schema(json.dumps({"type": "record", "name": name, "fields": fields}), "AVRO")


@pytest.fixture(scope="module")
def metered_registry(
    shared_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """A registry of this module's own (its own `_schemas` topic), serving its metrics."""
    proc = RegistryProcess(
        tmp_path_factory.mktemp("metered-registry"),
        shared_broker.bootstrap,
        topic=f"_schemas-metrics-{uuid.uuid4().hex[:8]}",
        args=["--metrics-port", "0"],
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def test_requests_are_counted_per_route_and_status(metered_registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": metered_registry.url})
    ids = [client.register_schema(f"metrics-{n}-value", _avro(f"M{n}")) for n in range(2)]
    before = scrape(metered_registry.metrics_url)
    with httpx.Client(base_url=metered_registry.url) as http:
        for _ in range(3):
            assert http.get(f"/schemas/ids/{ids[0]}").status_code == 200
        assert http.get("/subjects/no-such-subject/versions").status_code == 404
        assert http.get("/no/such/path").status_code == 404
    after = scrape(metered_registry.metrics_url)

    def delta(**labels: str) -> float:
        return after.get(REQUESTS, **labels) - before.get(REQUESTS, **labels)

    by_id = {"method": "GET", "route": "/schemas/ids/{id}"}
    assert delta(**by_id, code="200") == 3
    assert delta(method="GET", route="/subjects/{subject}/versions", code="404") == 1
    assert delta(method="GET", route="unmatched", code="404") == 1
    register = {"method": "POST", "route": "/subjects/{subject}/versions", "code": "200"}
    assert after.value(REQUESTS, **register) == 2
    seconds = "nerve_registry_request_seconds_count"
    assert after.value(seconds, **by_id) - before.get(seconds, **by_id) == 3
    assert after.value("nerve_registry_request_seconds_sum", **by_id) > 0


def test_schemas_and_subjects_are_counted(metered_registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": metered_registry.url})
    before = scrape(metered_registry.metrics_url)
    subject = f"counted-{uuid.uuid4().hex[:6]}"
    client.register_schema(subject, _avro("First"))
    client.register_schema(subject, _avro("First", "note"))
    client.register_schema(f"{subject}-json", Schema('{"type": "object"}', "JSON"))
    after = scrape(metered_registry.metrics_url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("nerve_registry_schemas", type="AVRO") == 2
    assert delta("nerve_registry_schemas", type="JSON") == 1
    assert delta("nerve_registry_subjects") == 2
    assert delta("nerve_registry_subject_versions") == 3
    client.delete_subject(f"{subject}-json")
    gone = scrape(metered_registry.metrics_url)
    assert gone.value("nerve_registry_subjects") == after.value("nerve_registry_subjects") - 1


def test_nerve_up_serves_the_broker_and_the_registry_on_one_metrics_port(
    tmp_path: Path,
) -> None:
    up = NerveUp(tmp_path / "data", args=["--metrics-port", "0"])
    up.start()
    try:
        registry = up.stdout_line("schema registry listening on ").rsplit(" ", 1)[1]
        client = SchemaRegistryClient({"url": registry})
        client.register_schema("up-value", _avro("Up"))
        _ck.produce_ok(up.bootstrap, "up-events", [b"one", b"two"])
        found = scrape(up.metrics_url)
        assert found.value("nerve_registry_schemas", type="AVRO") == 1
        register = {"method": "POST", "route": "/subjects/{subject}/versions", "code": "200"}
        assert found.value(REQUESTS, **register) == 1
        assert (
            found.value("kafka_server_brokertopicmetrics_messagesin_total", topic="up-events") == 2
        )
        # The registry's own writes go through the broker it runs beside.
        assert (
            found.value("kafka_server_brokertopicmetrics_messagesin_total", topic="_schemas") >= 1
        )
    finally:
        up.close()


def test_nerve_up_without_metrics_serves_none(tmp_path: Path) -> None:
    up = NerveUp(tmp_path / "data", args=["--no-metrics"])
    up.start()
    try:
        up.stdout_line("schema registry listening on ")
        with pytest.raises(AssertionError, match="no 'metrics on ' line"):
            up.stdout_line("metrics on ", timeout=1.0)
    finally:
        up.close()


def test_a_taken_metrics_port_stops_the_registry_with_one_line(
    shared_broker: BrokerProcess, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = RegistryProcess(
            tmp_path / "registry",
            shared_broker.bootstrap,
            topic=f"_schemas-taken-{uuid.uuid4().hex[:8]}",
            args=["--metrics-port", str(port)],
        )
        proc.start()
        try:
            deadline = time.monotonic() + 30
            while proc.running and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.returncode == 1
            last = proc.stderr_text().strip().splitlines()[-1]
            assert last.startswith(f"nerve registry: cannot serve metrics on 127.0.0.1:{port}: ")
            assert "Traceback" not in proc.stderr_text()
        finally:
            proc.close()
