"""docs/grafana/nerve.json: current with its generator, and every query of every panel answered
by a real Prometheus (Debian's, scripts/prometheus) scraping a live `nerve up` after real
traffic and a service's metrics endpoint."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from nerve.service.events import Meta
from nerve.service.observability import MetricsObserver, start_metrics_server
from tests import _ck
from tests._metrics import NerveUp

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "nerve.json"


def _targets() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_the_dashboard_is_what_its_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "grafana_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _lost(written: Any, read: Any, path: str = "") -> list[str]:
    """What of ``written`` is missing or different in ``read`` (``read`` may add defaults)."""
    if isinstance(written, dict) and isinstance(read, dict):
        return [
            lost
            for key, value in written.items()
            for lost in (
                _lost(value, read[key], f"{path}/{key}") if key in read else [f"{path}/{key}"]
            )
        ]
    if isinstance(written, list) and isinstance(read, list) and len(written) == len(read):
        return [
            lost
            for i, pair in enumerate(zip(written, read, strict=True))
            for lost in _lost(*pair, f"{path}[{i}]")
        ]
    return [] if written == read else [f"{path}: {written!r} read as {read!r}"]


def test_the_dashboard_parses_as_grafanas_dashboard_model() -> None:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()  # the panel and query models, by panel type
    raw = json.loads(DASHBOARD.read_text())
    dashboard = Dashboard.from_json(raw)
    # Every field written is one of Grafana's schema (dashboard, panels' options and field
    # configs, Prometheus queries): read into the models and written back, nothing is lost.
    assert _lost(raw, json.loads(json.dumps(dashboard, cls=JSONEncoder))) == []
    assert dashboard.title == "nerve"
    assert dashboard.panels is not None and len(dashboard.panels) == len(raw["panels"])
    assert [v["name"] for v in raw["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in raw["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in raw["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    done = subprocess.run(
        [str(ROOT / "scripts" / "prometheus")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"scripts/prometheus failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[NerveUp]:
    up = NerveUp(tmp_path / "data", args=["--metrics-port", "0"])
    up.start()
    try:
        yield up
    finally:
        up.close()


def _traffic(up: NerveUp) -> None:
    """Something for every panel: records in and out, a group with lag, a transaction, schema
    registrations and a registry error."""
    topic, group = "payments", "payments-audit"
    _ck.create_topic(up.bootstrap, topic, partitions=2)
    _ck.produce_ok(up.bootstrap, topic, [b"p%d" % i for i in range(40)])
    _ck.consume(up.bootstrap, topic, 40, partitions=(0, 1))
    committer = _ck.consumer(up.bootstrap, group_id=group)
    committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    committer.close()
    producer = Producer({"bootstrap.servers": up.bootstrap, "transactional.id": "audit-tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"in a transaction")
    producer.commit_transaction(30)
    record = {"type": "record", "name": "Payment", "fields": [{"name": "id", "type": "string"}]}
    registry = SchemaRegistryClient({"url": up.registry_url})
    registry.register_schema("payments-value", Schema(json.dumps(record), "AVRO"))
    assert httpx.get(f"{up.registry_url}/subjects/unknown/versions").status_code == 404


def _service_metrics() -> int:
    """A service's metrics endpoint, as `nerve run --metrics-port` serves it."""
    observer = MetricsObserver()
    meta = Meta(id="e-1", source="test", type="PaymentMade", topic="payments")
    observer.consumed("audit", "payments", 10)
    observer.emitted("audit", "audit-log", meta)
    observer.handled("audit", "on_payment", meta, 0.002)
    observer.failed("audit", "on_payment", meta, ValueError("bad"))
    observer.dead_lettered("audit", "payments", meta, "bad")
    observer.lag("audit", "payments", 0, 3)
    return start_metrics_server(observer, 0, "127.0.0.1")


def test_prometheus_answers_every_panel_of_the_dashboard(platform: NerveUp, tmp_path: Path) -> None:
    _traffic(platform)
    service_port = _service_metrics()
    nerve_target = urllib.parse.urlsplit(platform.metrics_url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: nerve\n    static_configs: [{{targets: ['{nerve_target}']}}]\n"
        f"  - job_name: services\n    static_configs: [{{targets: ['127.0.0.1:{service_port}']}}]\n"
    )
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    prometheus = subprocess.Popen(
        [
            _prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def query(expr: str) -> Any:
            return _get(f"{api}/query?" + urllib.parse.urlencode({"query": expr}))

        # Rates need two scrapes of each target; wait for four.
        deadline = time.monotonic() + 60
        while True:
            try:
                counted = query("count_over_time(up[1m])")["data"]["result"]
                ups = {r["metric"]["job"]: float(r["value"][1]) for r in counted}
                if len(ups) == 2 and min(ups.values()) >= 4:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        assert {r["metric"]["job"]: r["value"][1] for r in query("up")["data"]["result"]} == {
            "nerve": "1",
            "services": "1",
        }

        empty = []
        for title, expr in _targets():
            answer = query(expr.replace("$__rate_interval", "30s"))
            assert answer["status"] == "success", (title, expr, answer)
            if not answer["data"]["result"]:
                empty.append((title, expr))
        assert not empty, f"panels whose query Prometheus answers with no series: {empty}"
        # The numbers behind two of them, end to end through Prometheus.
        lag = query('kafka_consumergroup_lag{consumergroup="payments-audit",partition="0"}')
        high = _ck.watermarks(platform.bootstrap, "payments", 0)[1]
        assert float(lag["data"]["result"][0]["value"][1]) == high - 5
        schemas = query('nerve_registry_schemas{type="AVRO"}')["data"]["result"]
        assert float(schemas[0]["value"][1]) == 1
    finally:
        prometheus.terminate()
        prometheus.wait(15)
        log.close()
