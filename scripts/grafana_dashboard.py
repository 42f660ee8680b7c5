# ruff: noqa: E501  (a panel's query reads best on one line)
"""Write docs/grafana/nerve.json: the Grafana dashboard over the broker's, the registry's and
the services' metrics (docs/metrics.md), built with Grafana's own foundation SDK so that the
JSON is what Grafana's dashboard schema describes.

    .venv/bin/python scripts/grafana_dashboard.py            # rewrite the file
    .venv/bin/python scripts/grafana_dashboard.py --check    # exit 1 if it is out of date

tests/test_grafana_dashboard.py checks the file is current and that Prometheus, scraping a
live nerve, answers every query.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "nerve.json"
SOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


def query(expr: str, legend: str = "", ref: str = "A") -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(SOURCE)


def series(title: str, unit: str, *queries: tuple[str, str], description: str = "") -> Timeseries:
    panel = Timeseries().title(title).unit(unit).datasource(SOURCE).height(8).span(12)
    if description:
        panel = panel.description(description)
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query(expr, legend, ref))
    return panel


def stat(title: str, expr: str, legend: str = "", unit: str = "short") -> Stat:
    return (
        Stat().title(title).unit(unit).datasource(SOURCE).height(4).span(4)
        .with_target(query(expr, legend))
    )  # fmt: skip


def p99(metric: str, by: str, scale: str = "") -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({metric}_bucket[{RATE}]))){scale}"


def build() -> dict[str, Any]:
    broker_topic = "kafka_server_brokertopicmetrics"
    groups = "kafka_coordinator_group_groupmetadatamanager"
    dashboard = (
        Dashboard("nerve")
        .uid("nerve-overview")
        .description(
            "Broker, schema registry and services of a nerve platform (docs/metrics.md). The "
            "broker's metrics carry Kafka's names, so its panels also read Apache Kafka through "
            "the JMX exporter and kafka-exporter."
        )
        .tags(["nerve", "kafka"])
        .refresh("30s")
        .time("now-1h", "now")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(Row("Health"))
        .with_panel(stat("Targets up", "up", "{{job}} {{instance}}"))
        .with_panel(stat("Client connections", "sum(kafka_server_socket_server_metrics_connection_count)"))
        .with_panel(stat("Topics", "sum(kafka_controller_kafkacontroller_globaltopiccount)"))
        .with_panel(stat("Consumer groups", f"sum({groups}_numgroups)"))
        .with_panel(stat("Open transactions", 'sum(nerve_broker_transactions{state=~"Ongoing|PrepareCommit|PrepareAbort"})'))
        .with_panel(stat("Broker memory", 'process_resident_memory_bytes{job=~"nerve|broker"}', "{{instance}}", "bytes"))
        .with_panel(series(
            "Groups by state", "short",
            (f"sum({groups}_numgroupsstable)", "Stable"),
            (f"sum({groups}_numgroupspreparingrebalance)", "PreparingRebalance"),
            (f"sum({groups}_numgroupscompletingrebalance)", "CompletingRebalance"),
            (f"sum({groups}_numgroupsempty)", "Empty"),
        ))
        .with_panel(series(
            "Transactions by state", "short",
            ("sum by (state) (nerve_broker_transactions)", "{{state}}"),
        ))
        .with_row(Row("Topics"))
        .with_panel(series(
            "Bytes in per topic", "Bps",
            (f"sum by (topic) (rate({broker_topic}_bytesin_total[{RATE}]))", "{{topic}}"),
            description="Record batches appended, as producers sent them (BytesInPerSec).",
        ))
        .with_panel(series(
            "Bytes out per topic", "Bps",
            (f"sum by (topic) (rate({broker_topic}_bytesout_total[{RATE}]))", "{{topic}}"),
            description="Record batches in fetch responses (BytesOutPerSec).",
        ))
        .with_panel(series(
            "Records in per topic", "short",
            (f"sum by (topic) (rate({broker_topic}_messagesin_total[{RATE}]))", "{{topic}}"),
        ))
        .with_panel(series(
            "Log size per partition", "bytes",
            ("sum by (topic, partition) (kafka_log_log_size)", "{{topic}}-{{partition}}"),
        ))
        .with_row(Row("Requests"))
        .with_panel(series(
            "Requests per API", "reqps",
            (f"sum by (request) (rate(kafka_network_requestmetrics_requests_total[{RATE}]))", "{{request}}"),
        ))
        .with_panel(series(
            "Request latency p99 per API", "ms",
            (p99("kafka_network_requestmetrics_totaltimems", "request"), "{{request}}"),
            description="From a request's last byte to its response; long-polling fetches "
            "include their wait (fetch.max.wait.ms).",
        ))
        .with_panel(series(
            "Failed produce and fetch partitions", "short",
            (f"sum by (topic) (rate({broker_topic}_failedproducerequests_total[{RATE}]))", "produce {{topic}}"),
            (f"sum by (topic) (rate({broker_topic}_failedfetchrequests_total[{RATE}]))", "fetch {{topic}}", ),
        ))
        .with_row(Row("Consumer groups"))
        .with_panel(series(
            "Lag per group and topic", "short",
            ("sum by (consumergroup, topic) (kafka_consumergroup_lag_sum)", "{{consumergroup}} {{topic}}"),
            description="High watermark minus committed offset, as kafka-exporter reports it.",
        ))
        .with_panel(series(
            "Lag per partition", "short",
            ("max by (consumergroup, topic, partition) (kafka_consumergroup_lag)",
             "{{consumergroup}} {{topic}}-{{partition}}"),
        ))
        .with_panel(series(
            "Records consumed per group", "short",
            (f"sum by (consumergroup) (rate(kafka_consumergroup_current_offset_sum[{RATE}]))",
             "{{consumergroup}}"),
        ))
        .with_panel(series(
            "Members per group", "short",
            ("sum by (consumergroup) (kafka_consumergroup_members)", "{{consumergroup}}"),
        ))
        .with_row(Row("Schema registry"))
        .with_panel(series(
            "Registry requests per route", "reqps",
            (f"sum by (method, route) (rate(nerve_registry_requests_total[{RATE}]))", "{{method}} {{route}}"),
        ))
        .with_panel(series(
            "Registry latency p99 per route", "s",
            (p99("nerve_registry_request_seconds", "method, route"), "{{method}} {{route}}"),
        ))
        .with_panel(series(
            "Registry errors", "reqps",
            (f'sum by (code, route) (rate(nerve_registry_requests_total{{code=~"4..|5.."}}[{RATE}]))', "{{code}} {{route}}"),
        ))
        .with_panel(series(
            "Schemas and subjects", "short",
            ("sum by (type) (nerve_registry_schemas)", "schemas {{type}}"),
            ("sum(nerve_registry_subjects)", "subjects"),
            ("sum(nerve_registry_subject_versions)", "versions"),
        ))
        .with_row(Row("Services"))
        .with_panel(series(
            "Events consumed and emitted per service", "short",
            (f"sum by (service) (rate(nerve_events_consumed_total[{RATE}]))", "in {{service}}"),
            (f"sum by (service) (rate(nerve_events_emitted_total[{RATE}]))", "out {{service}}"),
        ))
        .with_panel(series(
            "Handler latency p99", "s",
            (p99("nerve_handler_seconds", "service, handler"), "{{service}} {{handler}}"),
        ))
        .with_panel(series(
            "Handler errors and dead letters", "short",
            (f"sum by (service, handler) (rate(nerve_handler_errors_total[{RATE}]))", "errors {{service}} {{handler}}"),
            (f"sum by (service, topic) (rate(nerve_dead_letters_total[{RATE}]))", "dead letters {{service}} {{topic}}"),
        ))
        .with_panel(series(
            "Service lag (its own position)", "short",
            ("sum by (service, topic) (nerve_consumer_lag)", "{{service}} {{topic}}"),
        ))
    )  # fmt: skip
    built = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    _lay_out(built["panels"])
    return built


# Display options the builders leave unset (null): Grafana's defaults, spelled out.
OPTIONS: dict[str, dict[str, Any]] = {
    "timeseries": {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "stat": {
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "auto",
    },
}


def _lay_out(panels: list[dict[str, Any]]) -> None:
    """Ids, display options and grid positions, left to right and row after row (24
    columns)."""
    x = y = row_height = 0
    for number, panel in enumerate(panels, 1):
        panel["id"] = number
        if panel.get("options") is None and panel["type"] in OPTIONS:
            panel["options"] = OPTIONS[panel["type"]]
        if panel["type"] == "row":
            y += row_height
            x, row_height = 0, 0
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
            continue
        width, height = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if x + width > 24:
            x, y = 0, y + row_height
            row_height = 0
        panel["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
        x += width
        row_height = max(row_height, height)


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
