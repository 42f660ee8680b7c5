"""The catalog records each stream's stores, windows and internal topics (issue 14 item 7),
and its source topics among what the service consumes (the lineage graph draws them)."""

from __future__ import annotations

from nerve.service.catalog import describe
from nerve.service.config import RunConfig
from tests.streams._nerve_apps import build


def test_the_catalog_names_a_streams_stores_windows_and_internal_topics() -> None:
    service = build("group-by", "catalog-groups", "", exactly_once=False)
    record = describe(service, RunConfig(registry_url=None), {})
    assert [c["topic"] for c in record["consumes"]] == ["group-by-in"]
    assert record["consumes"][0]["handlers"] == ["streams"]
    streams = record["streams"]
    (repartition,) = streams["repartition_topics"]
    assert repartition.startswith("catalog-groups-") and repartition.endswith("-repartition")
    counted = streams["subtopologies"][1]
    assert counted["sources"] == [repartition]
    assert any(c.endswith("-changelog") and "count" in c for c in counted["changelogs"])
    assert streams["late_topics"] == ["group-by-in.late"]


def test_a_window_is_described_with_its_size_and_grace() -> None:
    service = build("hopping", "catalog-hops", "", exactly_once=False)
    nodes = describe(service, RunConfig(registry_url=None), {})["streams"]["subtopologies"][0]
    (window,) = [n for n in nodes["nodes"] if n["kind"] == "window"]
    assert window["window"] == {"size": 10_000, "advance": 5_000, "kind": "hopping"}
    assert window["grace"] == 2_000
