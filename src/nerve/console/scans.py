"""The filter scan: reads a topic's records from a starting point up to the end offsets it
saw when it began (never following new records), evaluates a filter on each, and keeps the
first matches. Always bounded (records read, seconds, matches), cancellable, and reporting
its progress while it runs in a thread of its own; the page polls it.

A key search goes to the key's partition only: the partition the Java client's murmur2
partitioner and librdkafka's CRC32 partitioner (confluent-kafka's default) both put it in.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError
from nerve.console.decoding import Decoder, Record, record
from nerve.console.filters import GLOBALS, Filter

_KEEP_SCANS = 32  # finished scans kept for their pages; older ones are forgotten


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's default partitioner), as a signed 32-bit int."""
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def key_partitions(key: bytes, partitions: int) -> list[int]:
    """Where a producer puts ``key``: Java's murmur2 and librdkafka's CRC32 partitioners."""
    java = (murmur2(key) & 0x7FFFFFFF) % partitions
    librdkafka = zlib.crc32(key) % partitions
    return sorted({java, librdkafka})


@dataclass
class Scan:
    id: str
    topic: str
    text: str
    start: dict[int, int]  # partition -> first offset to read
    end: dict[int, int]  # partition -> end offset when the scan began
    max_records: int
    max_seconds: float
    max_matches: int
    read: int = 0
    errors: int = 0  # records the filter could not compare
    matches: list[Record] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped_by: str | None = None  # end, records, seconds, matches, cancelled, error: ...
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return sum(max(self.end[p] - self.start[p], 0) for p in self.start)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.read / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.read / self.total if self.total else 100.0

    @property
    def running(self) -> bool:
        return self.finished is None


class Scans:
    """The running and recent scans of this console (bounded)."""

    def __init__(self, cluster: Cluster, decoder: Decoder) -> None:
        self.cluster, self.decoder = cluster, decoder
        self._scans: OrderedDict[str, Scan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scan_id: str) -> Scan:
        with self._lock:
            found = self._scans.get(scan_id)
        if found is None:
            raise ConsoleError("no such scan (finished long ago?)", 404)
        return found

    def start(
        self,
        topic: str,
        flt: Filter,
        start: dict[int, int],
        end: dict[int, int],
        *,
        max_records: int,
        max_seconds: float,
        max_matches: int,
    ) -> Scan:
        scan = Scan(
            uuid.uuid4().hex[:12],
            topic,
            flt.text,
            start,
            end,
            max_records,
            max_seconds,
            max_matches,
        )
        with self._lock:
            self._scans[scan.id] = scan
            while len(self._scans) > _KEEP_SCANS:
                oldest = next(iter(self._scans.values()))
                if oldest.running:
                    break
                self._scans.popitem(last=False)
        threading.Thread(
            target=self._run, args=(scan, flt), name=f"scan-{scan.id}", daemon=True
        ).start()
        return scan

    def _run(self, scan: Scan, flt: Filter) -> None:
        try:
            run_scan(self.cluster, self.decoder, scan, flt)
        except Exception as exc:  # shown on the page, never lost
            scan.stopped_by = f"error: {exc}"
        finally:
            scan.finished = time.monotonic()


def run_scan(cluster: Cluster, decoder: Decoder, scan: Scan, flt: Filter) -> None:
    """Read and filter (in the calling thread) until a bound is reached."""
    from confluent_kafka import KafkaError, TopicPartition

    pending = {p for p in scan.start if scan.end[p] > scan.start[p]}
    if not pending:
        scan.stopped_by = "end"
        return
    consumer = cluster.consumer(**{"fetch.max.bytes": 52428800, "queued.min.messages": 200000})
    try:
        consumer.assign([TopicPartition(scan.topic, p, scan.start[p]) for p in sorted(pending)])
        deadline = scan.started + scan.max_seconds
        wants_value, wants_headers = flt.needs_value, flt.needs_headers
        wants_key = "key" in flt.names
        wants_time = "timestamp" in flt.names
        fields: dict[str, Any] = {"topic": scan.topic}
        matches = scan.matches
        data = decoder.data
        code, names = flt.code, GLOBALS
        needles = flt.needles
        ends = {p: scan.end[p] for p in pending}  # the partitions still read, to where
        read, errors, max_records = 0, 0, scan.max_records
        eof = KafkaError._PARTITION_EOF
        while ends:
            scan.read, scan.errors = read, errors
            if scan.cancelled.is_set():
                scan.stopped_by = "cancelled"
                return
            if time.monotonic() > deadline:
                scan.stopped_by = f"seconds ({scan.max_seconds:g} s)"
                return
            # The per-record loop: locals only, the filter's code evaluated directly.
            for message in consumer.consume(2000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == eof:
                        ends.pop(message.partition(), None)
                        continue
                    raise ConsoleError(error.str())
                partition = message.partition()
                stop = ends.get(partition)
                if stop is None:
                    continue
                offset = message.offset()
                if offset >= stop:  # past what was there when the scan began
                    del ends[partition]
                    consumer.incremental_unassign([TopicPartition(scan.topic, partition)])
                    continue
                read += 1
                if offset + 1 >= stop:
                    del ends[partition]
                fields["partition"] = partition
                fields["offset"] = offset
                if wants_time:
                    fields["timestamp"] = message.timestamp()[1]
                if wants_key:
                    fields["key"] = data(message.key())
                if wants_value:
                    raw = message.value()
                    if (
                        needles
                        and raw
                        and raw[:1] != b"\x00"  # not framed: JSON or text
                        and b"\\" not in raw
                        and not all(n in raw for n in needles)
                    ):
                        if read >= max_records:
                            scan.read, scan.errors = read, errors
                            scan.stopped_by = f"records ({max_records:,})"
                            return
                        continue  # cannot match: a required string is not in it
                    fields["value"] = data(raw)
                if wants_headers:
                    _header_fields(message.headers(), fields)
                try:
                    hit = eval(code, names, fields)  # a checked expression, no builtins
                except Exception:
                    errors += 1
                    hit = False
                if hit:
                    matches.append(record(decoder, message))
                    if len(matches) >= scan.max_matches:
                        scan.read, scan.errors = read, errors
                        scan.stopped_by = f"matches ({scan.max_matches})"
                        return
                if read >= max_records:
                    scan.read, scan.errors = read, errors
                    scan.stopped_by = f"records ({max_records:,})"
                    return
        scan.read, scan.errors = read, errors
        scan.stopped_by = "end"
    finally:
        consumer.close()


def _header_fields(headers: Any, fields: dict[str, Any]) -> None:
    texts: dict[str, Any] = {}
    ce: dict[str, Any] = {}
    for name, raw in headers or ():
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        texts[name] = text
        if name.startswith("ce_"):
            ce[name[3:]] = text
    fields["headers"] = texts
    fields["ce"] = ce
