"""Messages: browse a topic from its start, its end, an offset or a time, one partition or
all; follow it live (server-sent events); produce a record validated against the topic's
schema. Every read is bounded: a page reads at most ``limit`` records per partition, from
offsets found through the partition's indexes (a seek, however big the topic)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from nerve.console.cluster import Cluster, ConsoleError
from nerve.console.decoding import Decoder, Record, record

MODES = ("end", "start", "offset", "time")


@dataclass
class Page:
    topic: str
    partition: int | None  # None: all partitions
    mode: str
    records: list[Record]
    marks: dict[int, tuple[int, int]]  # partition -> (start, end)
    first: dict[int, int]  # the offset read from per partition
    limit: int

    @property
    def older(self) -> int | None:
        """The offset a page before this one starts at (one partition only)."""
        if self.partition is None:
            return None
        low = self.marks[self.partition][0]
        start = self.first.get(self.partition, low)
        return max(start - self.limit, low) if start > low else None

    @property
    def newer(self) -> int | None:
        if self.partition is None or not self.records:
            return None
        last = max(r.offset for r in self.records) + 1
        return last if last < self.marks[self.partition][1] else None


def parse_time(text: str) -> int:
    """ISO 8601 (``2026-12-02T10:00:00Z``, local time without a zone) or ms since the epoch."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConsoleError(
            f"a time is ISO 8601 (2026-12-02T10:00:00Z) or ms, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def start_offsets(
    cluster: Cluster,
    topic: str,
    marks: dict[int, tuple[int, int]],
    mode: str,
    limit: int,
    offset: int | None = None,
    at: int | None = None,
) -> dict[int, int]:
    """Where a read of ``limit`` records per partition begins, by mode."""
    from confluent_kafka import TopicPartition

    if mode == "start":
        return {p: low for p, (low, _) in marks.items()}
    if mode == "end":
        return {p: max(low, high - limit) for p, (low, high) in marks.items()}
    if mode == "offset":
        if offset is None:
            raise ConsoleError("an offset to start at")
        return {p: min(max(offset, low), high) for p, (low, high) in marks.items()}
    if mode == "time":
        if at is None:
            raise ConsoleError("a time to start at")
        consumer = cluster.consumer()
        try:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, at) for p in marks], timeout=cluster.timeout
            )
        except Exception as exc:
            raise ConsoleError(f"cannot look the time up: {exc}", 502) from None
        finally:
            consumer.close()
        # No record at or after that time: the partition's end.
        return {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1]
                for tp in found}  # fmt: skip
    raise ConsoleError(f"unknown mode {mode!r}: {', '.join(MODES)}")


def read_range(
    cluster: Cluster,
    topic: str,
    start: dict[int, int],
    stop: dict[int, int],
    limit: int,
    convert: Callable[[Any], Any],
) -> list[Any]:
    """Up to ``limit`` records of each partition from ``start``, none at or past ``stop``."""
    from confluent_kafka import KafkaError, TopicPartition

    wanted = {p: min(stop[p], start[p] + limit) for p in start if stop[p] > start[p]}
    if not wanted:
        return []
    out: list[Any] = []
    consumer = cluster.consumer()
    try:
        consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(wanted)])
        deadline = time.monotonic() + cluster.timeout
        while wanted:
            if time.monotonic() > deadline:
                break  # what arrived is shown; the page says how many
            for message in consumer.consume(500, timeout=0.2):
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        wanted.pop(partition, None)
                        continue
                    raise ConsoleError(error.str(), 502)
                end = wanted.get(partition)
                if end is None:
                    continue
                if message.offset() >= end:  # control records or aborted ones skipped past it
                    wanted.pop(partition, None)
                    continue
                out.append(convert(message))
                if message.offset() + 1 >= end:
                    wanted.pop(partition, None)
    finally:
        consumer.close()
    return out


def browse(
    cluster: Cluster,
    decoder: Decoder,
    topic: str,
    partition: int | None,
    mode: str,
    limit: int,
    offset: int | None = None,
    at: int | None = None,
) -> Page:
    metadata = cluster.topic(topic)
    partitions = sorted(metadata.partitions)
    if partition is not None:
        if partition not in metadata.partitions:
            raise ConsoleError(f"{topic} has no partition {partition}", 404)
        partitions = [partition]
    marks = cluster.watermarks(topic, partitions)
    first = start_offsets(cluster, topic, marks, mode, limit, offset, at)
    stop = {p: high for p, (_, high) in marks.items()}
    records = read_range(cluster, topic, first, stop, limit, lambda m: record(decoder, m))
    if partition is not None:
        records.sort(key=lambda r: r.offset)
    else:
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        # All partitions: the limit overall, the newest for "end", else the oldest read.
        records = records[-limit:] if mode == "end" else records[:limit]
    if mode == "end":
        records.reverse()  # newest first, as one reads a tail
    return Page(topic, partition, mode, records, marks, first, limit)


# -- live tail -------------------------------------------------------------------------------


async def tail(
    cluster: Cluster,
    decoder: Decoder,
    topic: str,
    partition: int | None,
    render: Callable[[Record], str],
    disconnected: Callable[[], Any],
    max_seconds: float,
) -> AsyncIterator[str]:
    """Server-sent events, one per new record (rendered HTML), from the end as of now; a
    keep-alive comment every few seconds; ends when the browser goes or after ``max_seconds``
    (the browser's EventSource then reconnects)."""
    from confluent_kafka import OFFSET_END, TopicPartition

    metadata = cluster.topic(topic)
    partitions = [partition] if partition is not None else sorted(metadata.partitions)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
    stop = threading.Event()

    def put(item: str | None) -> None:
        if queue.full():
            return  # the browser is slower than the topic: it sees a sample
        queue.put_nowait(item)

    def follow() -> None:
        consumer = cluster.consumer(**{"enable.partition.eof": False})
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
            while not stop.is_set():
                for message in consumer.consume(100, timeout=0.25):
                    if message.error() is None:
                        html = render(record(decoder, message))
                        loop.call_soon_threadsafe(put, html)
        except Exception as exc:
            loop.call_soon_threadsafe(put, f"<tr><td colspan=6>tail stopped: {exc}</td></tr>")
        finally:
            consumer.close()
            loop.call_soon_threadsafe(put, None)

    thread = threading.Thread(target=follow, name=f"tail-{topic}", daemon=True)
    thread.start()
    deadline = time.monotonic() + max_seconds
    try:
        yield "retry: 2000\n\n"
        while time.monotonic() < deadline:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=5)
            except TimeoutError:
                if await disconnected():
                    break
                yield ": keep-alive\n\n"
                continue
            if item is None:
                break
            data = "".join(f"data: {line}\n" for line in item.splitlines())
            yield f"event: record\n{data}\n"
    finally:
        stop.set()


# -- produce ---------------------------------------------------------------------------------


@dataclass
class Produced:
    partition: int
    offset: int
    schema: str | None  # "Avro · topic-value v2 · id 5", or None (sent as typed)


def parse_headers(text: str) -> list[tuple[str, bytes]]:
    headers = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConsoleError(f"header line {number}: expected name: value, got {line!r}")
        headers.append((name.strip(), value.strip().encode()))
    return headers


def latest_schema(cluster: Cluster, subject: str) -> dict[str, Any] | None:
    if not cluster.has_registry:
        return None
    try:
        return dict(cluster.registry_get(f"/subjects/{subject}/versions/latest"))
    except ConsoleError as exc:
        if exc.status == 404:
            return None
        raise


def encode(cluster: Cluster, schema: dict[str, Any], text: str) -> bytes:
    """``text`` (JSON) written with the subject's schema and Confluent's framing; a value
    the schema refuses is a ConsoleError saying why (status 422), nothing is sent."""
    kind = schema.get("schemaType", "AVRO")
    frame = b"\x00" + int(schema["id"]).to_bytes(4, "big")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConsoleError(
            f"the value is not JSON, which the {kind} schema needs: {exc}", 422
        ) from None
    if kind == "AVRO":
        import fastavro
        from fastavro.validation import ValidationError, validate

        named: dict[str, Any] = {}
        for reference in schema.get("references") or []:
            found = cluster.registry_get(
                f"/subjects/{reference['subject']}/versions/{reference['version']}"
            )
            fastavro.parse_schema(json.loads(found["schema"]), named_schemas=named)
        parsed = fastavro.parse_schema(json.loads(schema["schema"]), named_schemas=named)
        try:
            validate(data, parsed, raise_errors=True)
        except ValidationError as exc:
            raise ConsoleError(f"the Avro schema refuses it: {exc}", 422) from None
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, data)
        return frame + out.getvalue()
    if kind == "JSON":
        import jsonschema

        try:
            validator = jsonschema.validators.validator_for(json.loads(schema["schema"]))
            validator(json.loads(schema["schema"])).validate(data)
        except jsonschema.ValidationError as exc:
            raise ConsoleError(f"the JSON Schema refuses it: {exc.message}", 422) from None
        return frame + json.dumps(data, separators=(",", ":")).encode()
    if kind == "PROTOBUF":
        return frame + b"\x00" + _protobuf(cluster, schema, text)
    raise ConsoleError(f"cannot write schema type {kind}")


def _protobuf(cluster: Cluster, schema: dict[str, Any], text: str) -> bytes:
    """The first message type of the schema's file, parsed from JSON (protobuf's own JSON
    mapping, which refuses unknown fields and wrong types)."""
    from google.protobuf import json_format
    from google.protobuf.message_factory import GetMessageClass

    from nerve.service.protobuf import Reference, load_file, rest_references

    def fetch(subject: str, version: int) -> tuple[str, list[Reference]]:
        path = f"/subjects/{quote(subject, safe='')}/versions/{version}"
        found = cluster.registry_get(path, format="serialized")
        return found["schema"], rest_references(found)

    serialized = cluster.registry_get(f"/schemas/ids/{schema['id']}", format="serialized")
    file = load_file(serialized["schema"], rest_references(serialized), fetch)
    descriptor = next(iter(file.message_types_by_name.values()))
    message = GetMessageClass(descriptor)()
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as exc:
        raise ConsoleError(f"the Protobuf schema refuses it: {exc}", 422) from None
    return bytes(message.SerializeToString())


def produce(
    cluster: Cluster,
    topic: str,
    key: str,
    value: str,
    headers: str,
    partition: int | None,
    use_schema: bool,
) -> Produced:
    metadata = cluster.topic(topic)
    if partition is not None and partition not in metadata.partitions:
        raise ConsoleError(f"{topic} has no partition {partition}")
    schema = latest_schema(cluster, f"{topic}-value") if use_schema else None
    label = None
    if schema is not None:
        payload: bytes | None = encode(cluster, schema, value)
        kind = {"AVRO": "Avro", "JSON": "JSON Schema", "PROTOBUF": "Protobuf"}
        label = (
            f"{kind[schema.get('schemaType', 'AVRO')]} · {schema['subject']} "
            f"v{schema['version']} · id {schema['id']}"
        )
    else:
        payload = value.encode() if value != "" else None
    delivered: list[Any] = []
    producer = cluster.producer()
    options: dict[str, Any] = {}
    if partition is not None:
        options["partition"] = partition
    producer.produce(
        topic,
        key=key.encode() if key else None,
        value=payload,
        headers=parse_headers(headers),
        on_delivery=lambda error, message: delivered.append((error, message)),
        **options,
    )
    producer.flush(cluster.timeout)
    if not delivered:
        raise ConsoleError(f"not acknowledged in {cluster.timeout:g} s", 504)
    error, message = delivered[0]
    if error is not None:
        raise ConsoleError(f"not written: {error.str()}", 502)
    return Produced(message.partition(), message.offset(), label)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
