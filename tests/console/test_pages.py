"""The console over HTTP against a live system: every page answers, values are decoded by
what they are, writes pass one gate, scans are bounded and report progress, and dead-letter
replay from the page follows the no-double-send rule of ``nerve dlq replay``."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests._ck import create_topic
from tests.console.conftest import TAIL_TOPIC, System, end_offsets

HX = {"HX-Request": "true"}


def get(system: System, path: str, **params: str) -> httpx.Response:
    response = httpx.get(system.url + path, params=params, timeout=30)
    assert response.status_code == 200, (path, response.text[-2000:])
    return response


def post(system: System, path: str, data: dict[str, str], status: int = 200) -> str:
    response = httpx.post(system.url + path, data=data, headers=HX, timeout=30)
    assert response.status_code == status, (path, response.text[-2000:])
    return html.unescape(response.text)


def text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def test_every_page_answers(system: System) -> None:
    for path in ("/", "/topics", "/groups", "/schemas", "/catalog", "/trace", "/dlq"):
        assert "nerve console" in get(system, path).text
    assert get(system, "/healthz").json() == {"status": "ok"}


def test_health_shows_broker_registry_and_services_up(system: System) -> None:
    page = text(get(system, "/"))
    assert page.count('class="up"') >= 2 + 4, page  # Kafka, the registry, four services
    for name in ("transactions", "balances", "alerts", "notifier"):
        assert f'data-service="{name}"' in page
    # Each service serves its metrics (nerve run --metrics-port) and the catalog says where.
    row = re.search(r'data-service="transactions">(.*?)</tr>', page, re.S)
    assert row is not None
    consumed, errors, letters = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))[1:4]
    assert consumed not in ("-", "0") and errors != "-" and letters != "-", row.group(1)


def test_topics_list_counts_records(system: System) -> None:
    page = text(get(system, "/topics"))
    row = re.search(r'data-topic="orders.json">(.*?)</tr>', page, re.S)
    assert row is not None
    assert ">3</td>" in row.group(1) and ">3,000</td>" in row.group(1)  # partitions, records
    assert "finance.transactions" in page and "_schemas" not in page
    assert "_schemas" in text(get(system, "/topics", internal="1"))


def test_messages_decode_avro_and_protobuf_naming_subject_and_version(system: System) -> None:
    page = text(get(system, f"/topics/{system.avro_topic}/messages", **{"from": "start"}))
    assert f"Avro · {system.avro_topic}-value v1" in page
    assert '"id": "p0"' in page and '"amount": 0.0' in page
    page = text(get(system, f"/topics/{system.protobuf_topic}/messages", **{"from": "start"}))
    assert f"Protobuf · {system.protobuf_topic}-value v1" in page
    assert '"id": "q3"' in page and '"team": "blue"' in page


def test_messages_show_cloudevents_attributes(system: System) -> None:
    page = text(get(system, "/topics/finance.low-balance/messages"))
    assert "CloudEvents attributes (binary mode)" in page
    assert system.low_balance["ce_id"] in page
    assert "/nerve/services/alerts" in page


def test_browse_by_offset_time_and_partition(system: System) -> None:
    topic = system.json_topic
    page = get(system, f"/topics/{topic}/messages", partition="1", **{"from": "offset"},
               offset="500", limit="5")  # fmt: skip
    offsets = re.findall(r'data-partition="1" data-offset="(\d+)"', page.text)
    assert offsets == ["500", "501", "502", "503", "504"]
    assert 'id="older"' in page.text and 'id="newer"' in page.text
    page = get(system, f"/topics/{topic}/messages", **{"from": "end"}, limit="4")
    assert len(re.findall(r'<tr class="record', page.text)) == 4
    page = get(system, f"/topics/{topic}/messages", **{"from": "time"}, time="2000-01-01T00:00Z",
               partition="2", limit="3")  # fmt: skip
    assert re.findall(r'data-offset="(\d+)"', page.text) == ["0", "1", "2"]
    far = get(system, f"/topics/{topic}/messages", **{"from": "time"}, time="2100-01-01T00:00Z")
    assert "no records there" in far.text


def test_filter_scan_finds_matches_and_reports_progress(system: System) -> None:
    started = post(
        system,
        f"/topics/{system.json_topic}/scan",
        {"filter": 'value.status == "big" && value.total > 495', "from": "start"},
    )
    scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while True:
        page = text(get(system, f"/scans/{scan_id}"))
        if "done (" in page or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "done (end)" in page, page
    assert 'class="read">3,000<' in page
    # total % 500 in 496..499: 4 of every 500 records
    assert 'class="matched">24<' in page, page
    assert page.count('<tr class="record') == 24


def test_scan_is_bounded_by_records_and_says_so(system: System) -> None:
    started = post(
        system,
        f"/topics/{system.json_topic}/scan",
        {"filter": "value.total == -1", "from": "start", "max_records": "1000"},
    )
    scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
    for _ in range(150):
        page = text(get(system, f"/scans/{scan_id}"))
        if "done (" in page:
            break
        time.sleep(0.2)
    assert "done (records (1,000))" in page
    assert 'class="read">1,000<' in page


def test_a_key_search_reads_only_the_keys_partition(system: System) -> None:
    started = post(system, f"/topics/{system.json_topic}/scan", {"key": "order-7"})
    scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
    for _ in range(150):
        page = text(get(system, f"/scans/{scan_id}"))
        if "done (" in page:
            break
        time.sleep(0.2)
    assert 'class="matched">60<' in page  # every 50th of 3,000
    read = int(re.search(r'class="read">([\d,]+)<', page).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert read < 3000  # one or two of the three partitions, not all


def test_a_bad_filter_is_refused_with_its_reason(system: System) -> None:
    page = post(system, f"/topics/{system.json_topic}/scan", {"filter": "__import__('os')"}, 400)
    assert "unknown function __import__()" in page
    page = post(system, f"/topics/{system.json_topic}/scan", {"filter": "value.__class__ == 1"})
    assert "scanning" in page  # a field of that name, looked up in the value: no such field
    page = post(system, f"/topics/{system.json_topic}/scan", {"filter": "[x for x in key]"}, 400)
    assert "ListComp is not part of the filter language" in page


def test_produce_is_validated_against_the_topics_avro_schema(system: System) -> None:
    topic = system.avro_topic
    before = end_offsets(system.broker.bootstrap, topic)[0]
    refused = post(system, f"/topics/{topic}/produce", {"key": "k", "value": '{"id": 5}'}, 422)
    assert "the Avro schema refuses it" in refused
    assert end_offsets(system.broker.bootstrap, topic)[0] == before  # nothing sent
    done = post(
        system, f"/topics/{topic}/produce", {"key": "k", "value": '{"id": "new", "amount": 2.5}'}
    )
    assert f"at offset {before} with Avro · {topic}-value v1" in done
    page = text(get(system, f"/topics/{topic}/messages", **{"from": "end"}, limit="1"))
    assert '"id": "new"' in page and "Avro · " in page


def test_produce_protobuf_from_json(system: System) -> None:
    topic = system.protobuf_topic
    refused = post(system, f"/topics/{topic}/produce", {"value": '{"nope": 1}'}, 422)
    assert "the Protobuf schema refuses it" in refused
    post(system, f"/topics/{topic}/produce", {"value": '{"id": "made", "amount": 1.5}'})
    page = text(get(system, f"/topics/{topic}/messages", **{"from": "end"}, limit="1"))
    assert '"id": "made"' in page and "Protobuf · " in page


def test_writes_need_the_consoles_own_pages(system: System) -> None:
    """A form posted by another site (no htmx header, or a foreign Origin) writes nothing."""
    topic = system.json_topic
    plain = httpx.post(f"{system.url}/topics/{topic}/produce", data={"value": "x"}, timeout=10)
    assert plain.status_code == 403
    foreign = httpx.post(
        f"{system.url}/topics/{topic}/produce",
        data={"value": "x"},
        headers={**HX, "Origin": "http://evil.example"},
        timeout=10,
    )
    assert foreign.status_code == 403


def test_topic_create_config_and_delete(system: System) -> None:
    name = "console-made"
    post(system, "/topics", {"name": name, "partitions": "2", "configs": "retention.ms=3600000"})
    page = text(get(system, f"/topics/{name}"))
    assert re.search(r'data-config="retention.ms"><td>retention.ms</td><td>3600000<', page)
    post(system, f"/topics/{name}/config", {"config": "retention.ms", "value": "7200000"})
    page = text(get(system, f"/topics/{name}"))
    assert re.search(r'data-config="retention.ms"><td>retention.ms</td><td>7200000<', page)
    refused = post(system, f"/topics/{name}/delete", {"confirm": "wrong"}, 400)
    assert "type the topic's name" in refused
    post(system, f"/topics/{name}/delete", {"confirm": name})
    for _ in range(50):
        if httpx.get(f"{system.url}/topics/{name}", timeout=10).status_code == 404:
            break
        time.sleep(0.1)
    assert httpx.get(f"{system.url}/topics/{name}", timeout=10).status_code == 404


def test_group_lag_and_reset_dry_run(system: System) -> None:
    bootstrap = system.broker.bootstrap
    topic, group = "console-lagging", "console-lagging-group"
    create_topic(bootstrap, topic)
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        producer.produce(topic, value=str(i).encode())
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    consumer.close()
    page = text(get(system, f"/groups/{group}"))
    assert 'id="total-lag">15<' in page
    dry = post(system, f"/groups/{group}/reset", {"topic": topic, "to": "latest", "execute": "0"})
    assert "dry run: nothing changed" in dry and ">20</td>" in dry
    assert 'id="total-lag">15<' in text(get(system, f"/groups/{group}"))
    post(system, f"/groups/{group}/reset", {"topic": topic, "to": "earliest", "execute": "1"})
    assert 'id="total-lag">20<' in text(get(system, f"/groups/{group}"))
    busy = post(
        system,
        "/groups/transactions/reset",
        {"topic": "finance.transaction-requests", "to": "latest", "execute": "0"},
        409,
    )
    assert "active member(s)" in busy


def test_schema_diff_and_compatibility_check(system: System) -> None:
    subject = f"{system.avro_topic}-value"
    page = text(get(system, f"/schemas/{subject}"))
    assert 'id="level">BACKWARD<' in page
    schema = json.dumps({"type": "record", "name": "Payment", "namespace": "finance", "fields": [
        {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "currency", "type": "string"}]})  # fmt: skip
    refused = post(system, f"/schemas/{subject}/check", {"schema": schema, "type": "AVRO"})
    assert "not compatible (BACKWARD)" in refused and "currency" in refused
    fine = json.dumps({"type": "record", "name": "Payment", "namespace": "finance", "fields": [
        {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "currency", "type": "string", "default": "EUR"}]})  # fmt: skip
    assert "compatible: the registry would accept it" in post(
        system, f"/schemas/{subject}/check", {"schema": fine, "type": "AVRO"}
    )


def test_catalog_draws_services_and_events_and_serves_asyncapi(system: System) -> None:
    page = text(get(system, "/catalog"))
    for name in ("transactions", "balances", "alerts", "notifier"):
        assert f'data-node="s:{name}"' in page
    assert 'data-node="e:finance.balance-changed:' in page
    service = text(get(system, "/catalog/services/balances"))
    assert "finance.transactions" in service and "finance.balance-changed" in service
    events = re.findall(r'href="(/catalog/event\?[^"]+)"', page)
    assert events
    event = text(get(system, "/catalog/event", topic="finance.low-balance",
                     type=system.low_balance["ce_type"]))  # fmt: skip
    assert "JSON Schema" in event and "alerts" in event and system.low_balance["ce_id"] in event
    document = get(system, "/catalog/asyncapi.json").json()
    assert document["asyncapi"] == "3.0.0" and document["channels"]


def test_trace_follows_the_chain_across_three_services(system: System) -> None:
    correlation = system.low_balance["ce_correlationid"]
    page = text(get(system, "/trace", id=system.low_balance["ce_id"]))
    by = re.findall(r"</a></td>\s*<td>([^<]*)</td><td class=\"time\">", page)
    assert {"transactions", "balances", "alerts"} <= set(by), page
    assert f"in chain {correlation}" in page
    depths = [int(d) for d in re.findall(r'data-depth="(\d+)"', page)]
    assert depths[:4] == [0, 1, 2, 3], depths  # requested -> recorded -> changed -> low
    assert len(re.findall(r'class="num latency">\d+ ms<', page)) >= 3
    same = text(get(system, "/trace", id=correlation))
    assert same.count('class="step') == page.count('class="step')


def test_dead_letters_list_and_replay_once(system: System) -> None:
    topic = "finance.transaction-requests"
    page = text(get(system, f"/dlq/{topic}"))
    assert "ValidationError" in page or "DecodeError" in page, page
    where = re.search(r'data-where="(\d+:\d+)"', page).group(1)  # type: ignore[union-attr]
    dry = post(system, f"/dlq/{topic}/replay", {"dry_run": "1"})
    assert "dry run: would replay 1 dead letter(s)" in dry
    before = sum(end_offsets(system.broker.bootstrap, topic, 4))
    done = post(system, f"/dlq/{topic}/replay", {"where": where, "dry_run": "0"})
    assert "replayed 1 dead letter(s)" in done
    again = post(system, f"/dlq/{topic}/replay", {"where": where, "dry_run": "0"})
    assert "replayed 0 dead letter(s)" in again and "skipped 1 already replayed" in again
    assert sum(end_offsets(system.broker.bootstrap, topic, 4)) == before + 1
    # The command line sees the same progress: that letter is done (the replayed record,
    # still malformed, may come back as a new letter).
    out = subprocess.run(
        [sys.executable, "-m", "nerve", "dlq", "replay", topic, "-b", system.broker.bootstrap,
         "--dry-run"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "skipped 1 already replayed" in out.stdout, out


def test_live_tail_streams_new_records(system: System) -> None:
    topic = TAIL_TOPIC
    from confluent_kafka import Producer

    with httpx.stream("GET", f"{system.url}/topics/{topic}/tail", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        time.sleep(1.0)  # the tail's consumer has found the end
        producer = Producer({"bootstrap.servers": system.broker.bootstrap})
        producer.produce(topic, value=b'{"tailed": true}')
        producer.flush(10)
        seen = ""
        for line in lines:
            seen += line
            if "tailed" in seen:
                break
    assert "event: record" in seen or "tailed" in seen


@pytest.mark.parametrize("path", ["/topics/nope", "/topics/nope/messages", "/groups/nope"])
def test_unknown_things_are_404_with_a_reason(system: System, path: str) -> None:
    response = httpx.get(system.url + path, timeout=10)
    assert response.status_code == 404
    assert "unknown" in response.text


def test_a_cancelled_scan_stops_and_says_so(system: System) -> None:
    """Cancel is checked before every batch: a scan cancelled before it reads reads nothing."""
    from nerve.console.cluster import Cluster
    from nerve.console.config import ConsoleConfig
    from nerve.console.decoding import Decoder
    from nerve.console.filters import compile_filter
    from nerve.console.scans import Scan, run_scan

    cluster = Cluster(ConsoleConfig(bootstrap_servers=system.broker.bootstrap, registry_url=None))
    scan = Scan("s", system.json_topic, "true", {0: 0, 1: 0, 2: 0}, {0: 1000, 1: 1000, 2: 1000},
                10**6, 30.0, 10**6)  # fmt: skip
    scan.cancelled.set()
    run_scan(cluster, Decoder(cluster), scan, compile_filter("true"))
    assert scan.stopped_by == "cancelled" and scan.read == 0
    bounded = Scan("t", system.json_topic, "true", {0: 0}, {0: 1000}, 10**6, 30.0, 7)
    run_scan(cluster, Decoder(cluster), bounded, compile_filter("true"))
    assert bounded.stopped_by == "matches (7)" and len(bounded.matches) == 7


def test_pages_show_what_consumers_see_not_aborted_records(system: System) -> None:
    from confluent_kafka import Producer

    topic = "console-transactions"
    create_topic(system.broker.bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": system.broker.bootstrap, "transactional.id": "console-test"}
    )
    producer.init_transactions(10)
    for value, commit in ((b"aborted-one", False), (b"committed-one", True)):
        producer.begin_transaction()
        producer.produce(topic, value=value)
        producer.flush(10)
        (producer.commit_transaction if commit else producer.abort_transaction)(10)
    page = get(system, f"/topics/{topic}/messages", **{"from": "start"}).text
    assert "committed-one" in page and "aborted-one" not in page


def test_the_string_prefilter_never_hides_a_match(system: System) -> None:
    """A value spelling the string with an escape, or framed, is still decoded and compared."""
    from confluent_kafka import Producer

    topic = "console-prefilter"
    create_topic(system.broker.bootstrap, topic)
    producer = Producer({"bootstrap.servers": system.broker.bootstrap})
    for value in (b'{"status": "big"}', b'{"status": "b\\u0069g"}', b'{"status": "small"}',
                  b'"big"', b"big"):  # fmt: skip
        producer.produce(topic, value=value)
    producer.flush(10)
    started = post(system, f"/topics/{topic}/scan", {"filter": 'value.status == "big"'})
    scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
    for _ in range(100):
        page = text(get(system, f"/scans/{scan_id}"))
        if "done (" in page:
            break
        time.sleep(0.2)
    assert 'class="matched">2<' in page and 'class="read">5<' in page, page


def test_json_schema_values_decoded_and_produce_validated(system: System) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from tests.registry.test_serializers import PAYMENT_JSON

    topic = "payments.jsonschema"
    create_topic(system.broker.bootstrap, topic)
    serializer = JSONSerializer(PAYMENT_JSON, SchemaRegistryClient({"url": system.registry.url}))
    producer = Producer({"bootstrap.servers": system.broker.bootstrap})
    context = SerializationContext(topic, MessageField.VALUE)
    producer.produce(topic, value=serializer({"id": "j1", "amount": 4.5}, context))
    assert producer.flush(10) == 0
    page = text(get(system, f"/topics/{topic}/messages", **{"from": "start"}))
    assert f"JSON Schema · {topic}-value v1" in page and '"id": "j1"' in page
    refused = post(system, f"/topics/{topic}/produce", {"value": '{"id": "j2"}'}, 422)
    assert "the JSON Schema refuses it: 'amount' is a required property" in refused
    done = post(system, f"/topics/{topic}/produce", {"value": '{"id": "j3", "amount": 1}'})
    assert f"with JSON Schema · {topic}-value v1" in done
    page = text(get(system, f"/topics/{topic}/messages", **{"from": "end"}, limit="1"))
    assert '"id": "j3"' in page and "JSON Schema · " in page
