"""Produce/consume throughput benchmark for nerve (or any Kafka-protocol broker).

Why this shape: the numbers must be comparable with Apache Kafka on the same machine, so the
measurement (`run_case`) knows nothing about nerve; it takes a bootstrap address and returns a
`CaseResult`. Spawning and pinning a nerve broker, and measuring its memory, live around it.

Run `python bench/produce_consume.py --help`; bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from _broker import SpawnedBroker, pin_current_process

MIB = 1024 * 1024

# Targets from the issue; all with 1 KiB messages. MB here is MiB (see README).
TARGET_PRODUCE_MB_S = 150.0
TARGET_CONSUME_MB_S = 200.0
TARGET_BROKER_RSS_MB = 150.0
TARGET_MSG_SIZE = 1024

# Default volume per case: a few seconds each at the target rates.
DEFAULT_MB = {1024: 200.0, 100: 50.0}
QUICK_MB = {1024: 10.0, 100: 2.0}

# Producer settings, explained in the README. Everything not named is librdkafka's default
# (batch.size 1000000, batch.num.messages 10000, queue.buffering.max.kbytes 1 GiB, ...).
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "none",
    "enable.idempotence": False,
    # Only failed deliveries call back into Python: the client's core then spends its time in
    # produce() rather than in one Python callback per message, and flush() still tells us that
    # every message has either been acknowledged or reported as failed.
    "delivery.report.only.error": True,
}

CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
    # librdkafka pauses a partition's fetching for this long once its local queue holds
    # queued.min.messages (100000); the default of 1000 ms made small-message runs swing between
    # ~20 and ~180 MB/s on the same broker depending on when the pause hit.
    "fetch.queue.backoff.ms": 10,
}

CONSUME_BATCH = 10_000

# Consumer errors already reported, so a repeated one is printed once per run.
_WARNED: set[str] = set()


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: what to send and how the topic is laid out."""

    msg_size: int
    partitions: int
    total_mb: float

    @property
    def messages(self) -> int:
        """Message count: the volume rounded down to whole messages, at least one."""
        return max(1, int(self.total_mb * MIB) // self.msg_size)

    @property
    def name(self) -> str:
        """A short label such as '1KB x 8p'."""
        size = f"{self.msg_size // 1024}KB" if self.msg_size % 1024 == 0 else f"{self.msg_size}B"
        return f"{size} x {self.partitions}p"


@dataclass
class PhaseResult:
    """Throughput of one direction (produce or consume) of one case."""

    messages: int
    bytes: int
    seconds: float
    errors: int = 0

    @property
    def msgs_per_s(self) -> float:
        """Messages per second over the timed window."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Payload MiB per second over the timed window."""
        return self.bytes / MIB / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain fields plus the derived rates, so readers of the JSON need not recompute."""
        return {
            **asdict(self),
            "msgs_per_s": round(self.msgs_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 2),
        }


@dataclass
class CaseResult:
    """What `run_case` measured for one case against one broker."""

    case: str
    msg_size: int
    partitions: int
    topic: str
    produce: PhaseResult
    consume: PhaseResult
    # Filled in by the caller when it owns the broker process; run_case cannot know it.
    broker_peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with derived rates included."""
        return {
            "case": self.case,
            "msg_size": self.msg_size,
            "partitions": self.partitions,
            "topic": self.topic,
            "produce": self.produce.to_json(),
            "consume": self.consume.to_json(),
            "broker_peak_rss_mb": (
                None if self.broker_peak_rss_mb is None else round(self.broker_peak_rss_mb, 1)
            ),
            **({"extra": self.extra} if self.extra else {}),
        }


class BenchError(RuntimeError):
    """A case could not complete (stall, delivery errors, broker refused a request)."""


def _payload(size: int) -> bytes:
    """Incompressible bytes, so a broker or client that compresses gains nothing unfairly."""
    return os.urandom(size)


def create_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Create the topic and wait until its metadata shows every partition with a leader.

    Kafka answers CreateTopics before every broker has the new metadata; producing too early
    would then time the client's metadata retries, not the broker's throughput.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        raise BenchError(f"could not create topic {topic}: {exc}") from exc
    except TimeoutError as exc:
        raise BenchError(
            f"no answer to creating topic {topic} from {bootstrap} within {timeout_s:.0f} s"
        ) from exc
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5)
        info = metadata.topics.get(topic)
        if (
            info is not None
            and info.error is None
            and len(info.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in info.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise BenchError(f"topic {topic} did not show {partitions} led partitions in {timeout_s} s")


def delete_topic(bootstrap: str, topic: str, timeout_s: float = 15.0) -> None:
    """Best-effort removal of a benchmark topic, so repeated runs do not fill a shared broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.delete_topics([topic], operation_timeout=timeout_s)[topic].result(timeout=timeout_s)
    except Exception as exc:
        print(f"warning: could not delete topic {topic}: {exc}", file=sys.stderr)


def produce_phase(
    bootstrap: str,
    topic: str,
    spec: CaseSpec,
    *,
    stall_timeout_s: float,
    health_check: Callable[[], None] | None = None,
) -> PhaseResult:
    """Produce spec.messages messages and time from the first produce() to flush() returning.

    The producer's connection and the topic's metadata are fetched before the clock starts, so
    the window holds only sending and acknowledging. Messages go round-robin to the partitions:
    librdkafka's sticky partitioner would put a short run's keyless messages into one or two
    partitions, and the 8-partition case would then not load eight partitions at all.
    """
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer.list_topics(topic=topic, timeout=10)
    value = _payload(spec.msg_size)
    produce = producer.produce
    poll = producer.poll
    count = spec.messages
    partitions = spec.partitions

    start = time.perf_counter()
    for i in range(count):
        try:
            produce(topic, value, partition=i % partitions, on_delivery=on_delivery)
        except BufferError:
            _wait_for_room(producer, topic, value, i % partitions, on_delivery, stall_timeout_s)
        poll(0)
    last_progress = time.monotonic()
    remaining = len(producer)
    while remaining > 0:
        producer.flush(1.0)
        now_remaining = len(producer)
        if now_remaining < remaining:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_timeout_s:
            raise BenchError(
                f"produce stalled: {now_remaining} of {count} messages unacknowledged for "
                f"{stall_timeout_s:.0f} s"
            )
        remaining = now_remaining
        if health_check is not None:
            health_check()
    elapsed = time.perf_counter() - start

    if errors:
        raise BenchError(f"{len(errors)} of {count} deliveries failed; first: {errors[0]}")
    return PhaseResult(messages=count, bytes=count * spec.msg_size, seconds=elapsed)


def _wait_for_room(
    producer: Producer,
    topic: str,
    value: bytes,
    partition: int,
    on_delivery: Callable[[Any, Any], None],
    stall_timeout_s: float,
) -> None:
    """Retry one produce() while the local queue is full, as acknowledgements free room.

    Kept out of the hot loop; the deadline turns a broker that stopped acknowledging into an
    error rather than an endless retry.
    """
    deadline = time.monotonic() + stall_timeout_s
    while True:
        producer.poll(0.01)
        try:
            producer.produce(topic, value, partition=partition, on_delivery=on_delivery)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"produce stalled: local queue full of unacknowledged messages for "
                    f"{stall_timeout_s:.0f} s"
                ) from None


def consume_phase(
    bootstrap: str,
    topic: str,
    spec: CaseSpec,
    *,
    stall_timeout_s: float,
    health_check: Callable[[], None] | None = None,
) -> PhaseResult:
    """Read every message of the topic from the beginning and time until the last one arrives.

    assign() with explicit beginning offsets needs no group coordinator, so this works on a
    broker without consumer-group support; group.id is set only because librdkafka insists.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"nerve-bench-{uuid.uuid4().hex[:12]}",
            **CONSUMER_CONFIG,
        }
    )
    try:
        consumer.list_topics(topic=topic, timeout=10)
        target = spec.messages
        received = 0
        received_bytes = 0
        consume = consumer.consume
        last_progress = time.monotonic()

        start = time.perf_counter()
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
        )
        while received < target:
            # Never ask for more than is left: consume() waits out its whole timeout for a
            # batch it cannot fill, which would add idle time to the measured window.
            batch = consume(num_messages=min(CONSUME_BATCH, target - received), timeout=0.2)
            before = received
            if batch:
                for msg in batch:
                    err = msg.error()
                    if err is None:
                        received += 1
                        received_bytes += len(msg)
                    elif err.fatal():
                        raise BenchError(f"fatal consumer error: {err}")
                    elif str(err) not in _WARNED:
                        # Transient (e.g. a dropped connection librdkafka will retry, or nerve
                        # refusing FindCoordinator): report once per run and rely on the stall
                        # timeout if it never recovers.
                        _WARNED.add(str(err))
                        print(f"warning: consumer error: {err}", file=sys.stderr)
            if received > before:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_timeout_s:
                raise BenchError(
                    f"consume stalled: {received} of {target} messages read, none for "
                    f"{stall_timeout_s:.0f} s"
                )
            if health_check is not None and received == before:
                health_check()
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()

    if received != target:
        raise BenchError(f"consumed {received} messages, expected {target}")
    return PhaseResult(messages=received, bytes=received_bytes, seconds=elapsed)


def run_case(
    bootstrap: str,
    spec: CaseSpec,
    *,
    topic_prefix: str = "nerve-bench",
    stall_timeout_s: float = 30.0,
    delete_after: bool = False,
    health_check: Callable[[], None] | None = None,
) -> CaseResult:
    """Measure one case against whatever broker listens at `bootstrap`.

    The topic is new and uniquely named, so the consume phase reads exactly what this case
    produced, and runs against a shared broker never collide. `health_check` is called while
    waiting so a caller that owns the broker can turn a crash into an error instead of a stall.
    """
    topic = f"{topic_prefix}-{spec.msg_size}b-{spec.partitions}p-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, topic, spec.partitions)
    try:
        produced = produce_phase(
            bootstrap, topic, spec, stall_timeout_s=stall_timeout_s, health_check=health_check
        )
        consumed = consume_phase(
            bootstrap, topic, spec, stall_timeout_s=stall_timeout_s, health_check=health_check
        )
    finally:
        if delete_after:
            delete_topic(bootstrap, topic)
    return CaseResult(
        case=spec.name,
        msg_size=spec.msg_size,
        partitions=spec.partitions,
        topic=topic,
        produce=produced,
        consume=consumed,
    )


# --- reporting ---------------------------------------------------------------------------------


def _mark(value: float, target: float, *, below: bool = False) -> str:
    ok = value < target if below else value >= target
    return "ok" if ok else "MISS"


def format_table(results: Sequence[CaseResult], *, show_rss: bool) -> str:
    """The per-case table, with targets printed beside the 1 KiB figures."""
    header = (
        f"{'case':<12} {'produce msg/s':>14} {'MB/s':>8} {'target':>12} "
        f"{'consume msg/s':>14} {'MB/s':>8} {'target':>12}"
    )
    if show_rss:
        header += f" {'broker peak RSS MB':>19} {'target':>11}"
    lines = [header, "-" * len(header)]
    for r in results:
        has_target = r.msg_size == TARGET_MSG_SIZE
        p_target = (
            f">={TARGET_PRODUCE_MB_S:.0f} {_mark(r.produce.mb_per_s, TARGET_PRODUCE_MB_S)}"
            if has_target
            else "-"
        )
        c_target = (
            f">={TARGET_CONSUME_MB_S:.0f} {_mark(r.consume.mb_per_s, TARGET_CONSUME_MB_S)}"
            if has_target
            else "-"
        )
        line = (
            f"{r.case:<12} {r.produce.msgs_per_s:>14,.0f} {r.produce.mb_per_s:>8.1f} "
            f"{p_target:>12} {r.consume.msgs_per_s:>14,.0f} {r.consume.mb_per_s:>8.1f} "
            f"{c_target:>12}"
        )
        if show_rss and r.broker_peak_rss_mb is not None:
            rss = r.broker_peak_rss_mb
            rss_target = (
                f"<{TARGET_BROKER_RSS_MB:.0f} {_mark(rss, TARGET_BROKER_RSS_MB, below=True)}"
            )
            line += f" {rss:>19.1f} {rss_target:>11}"
        lines.append(line)
    return "\n".join(lines)


def evaluate_targets(results: Sequence[CaseResult], peak_rss_mb: float | None) -> dict[str, Any]:
    """Compare the 1 KiB cases (worst partition count) and the broker's peak RSS with targets.

    The worst case is used because a target is a floor the broker should clear in every layout.
    """
    kib = [r for r in results if r.msg_size == TARGET_MSG_SIZE]
    out: dict[str, Any] = {}
    if kib:
        produce = min(r.produce.mb_per_s for r in kib)
        consume = min(r.consume.mb_per_s for r in kib)
        out["produce_1kb_mb_s"] = {
            "worst": round(produce, 2),
            "target_min": TARGET_PRODUCE_MB_S,
            "met": produce >= TARGET_PRODUCE_MB_S,
        }
        out["consume_1kb_mb_s"] = {
            "worst": round(consume, 2),
            "target_min": TARGET_CONSUME_MB_S,
            "met": consume >= TARGET_CONSUME_MB_S,
        }
    if peak_rss_mb is not None:
        out["broker_peak_rss_mb"] = {
            "peak": round(peak_rss_mb, 1),
            "target_max": TARGET_BROKER_RSS_MB,
            "met": peak_rss_mb < TARGET_BROKER_RSS_MB,
        }
    return out


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; see README for what each changes in the figures."""
    parser = argparse.ArgumentParser(
        description="Produce/consume throughput benchmark (confluent-kafka / librdkafka)."
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="benchmark an already running broker"
    )
    where.add_argument(
        "--spawn-nerve",
        action="store_true",
        help="start a nerve broker in a temp dir (the default when --bootstrap is not given)",
    )
    parser.add_argument(
        "--mb",
        type=float,
        help="MiB produced per case (default: 200 for 1 KiB, 50 for 100 B; --quick: 10 / 2)",
    )
    parser.add_argument("--quick", action="store_true", help="small volumes for a CI smoke run")
    parser.add_argument(
        "--sizes",
        default="1024,100",
        help="comma-separated message sizes in bytes (default: 1024,100)",
    )
    parser.add_argument(
        "--partitions", default="1,8", help="comma-separated partition counts (default: 1,8)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per case; the table shows the median"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--label", help="name of the broker under test, stored in the JSON (default: nerve/...)"
    )
    parser.add_argument(
        "--broker-cpu", type=int, default=0, help="CPU for a spawned broker (default 0)"
    )
    parser.add_argument(
        "--client-cpu",
        type=int,
        default=None,
        help="CPU to pin this client to (default: 1 when spawning nerve, unpinned otherwise)",
    )
    parser.add_argument("--no-pin", action="store_true", help="pin neither broker nor client")
    parser.add_argument(
        "--nerve-cmd",
        help="command that runs nerve, e.g. 'python -m nerve' (default: the venv's nerve script)",
    )
    parser.add_argument(
        "--stall-timeout", type=float, default=30.0, help="fail a case after N s without progress"
    )
    parser.add_argument(
        "--keep-topics", action="store_true", help="do not delete topics on an external broker"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the spawned broker's data dir"
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 2 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.mb is not None and args.mb <= 0:
        parser.error("--mb must be positive")
    if not args.bootstrap:
        args.spawn_nerve = True
    return args


def build_specs(args: argparse.Namespace) -> list[CaseSpec]:
    """The case list: every size crossed with every partition count, largest messages first."""
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    partitions = [int(p) for p in args.partitions.split(",") if p.strip()]
    defaults = QUICK_MB if args.quick else DEFAULT_MB
    fallback = 2.0 if args.quick else 50.0
    specs = []
    for size in sizes:
        mb = args.mb if args.mb is not None else defaults.get(size, fallback)
        specs.extend(CaseSpec(msg_size=size, partitions=p, total_mb=mb) for p in partitions)
    return specs


def run_all(
    bootstrap: str,
    specs: Sequence[CaseSpec],
    args: argparse.Namespace,
    out: list[CaseResult],
    *,
    broker: SpawnedBroker | None = None,
) -> None:
    """Run every case `args.repeat` times, appending to `out` as it goes.

    Appending rather than returning keeps the finished runs when a later one fails, so the
    table and JSON still show how far the broker got.
    """
    for spec in specs:
        for run in range(1, args.repeat + 1):
            suffix = f" (run {run}/{args.repeat})" if args.repeat > 1 else ""
            print(f"running {spec.name}: {spec.messages:,} messages{suffix} ...", flush=True)
            result = run_case(
                bootstrap,
                spec,
                stall_timeout_s=args.stall_timeout,
                delete_after=broker is None and not args.keep_topics,
                health_check=None if broker is None else broker.check_alive,
            )
            result.extra["run"] = run
            if broker is not None:
                broker.check_alive()
                # The peak so far, i.e. including every earlier case: memory that one case
                # leaves behind shows up against the next.
                result.broker_peak_rss_mb = broker.peak_rss_mb
            out.append(result)


def median_per_case(runs: Sequence[CaseResult]) -> list[CaseResult]:
    """One result per case holding the median produce and consume times of its runs.

    The machine is noisy, so a single run can be far off; the median ignores one bad run out of
    three. Each phase gets its own median (same byte count, so median time = median rate).
    """
    by_case: dict[str, list[CaseResult]] = {}
    for run in runs:
        by_case.setdefault(run.case, []).append(run)
    merged = []
    for case_runs in by_case.values():
        if len(case_runs) == 1:
            merged.append(case_runs[0])
            continue
        first = case_runs[0]
        merged.append(
            CaseResult(
                case=first.case,
                msg_size=first.msg_size,
                partitions=first.partitions,
                topic=first.topic,
                produce=_median_phase([r.produce for r in case_runs]),
                consume=_median_phase([r.consume for r in case_runs]),
                broker_peak_rss_mb=case_runs[-1].broker_peak_rss_mb,
                extra={"runs": len(case_runs)},
            )
        )
    return merged


def _median_phase(phases: Sequence[PhaseResult]) -> PhaseResult:
    first = phases[0]
    return PhaseResult(
        messages=first.messages,
        bytes=first.bytes,
        seconds=statistics.median(p.seconds for p in phases),
        errors=sum(p.errors for p in phases),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print the table, optionally write JSON; 0 when every case completed."""
    args = parse_args(argv)
    specs = build_specs(args)

    # Pin before any librdkafka client (or helper thread) exists: threads inherit affinity.
    client_cpu = args.client_cpu
    if client_cpu is None and args.spawn_nerve:
        client_cpu = 1
    client_pinned = False
    if client_cpu is not None and not args.no_pin:
        client_pinned = pin_current_process(client_cpu)
        if not client_pinned:
            print(f"warning: could not pin the client to CPU {client_cpu}", file=sys.stderr)

    meta: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "label": args.label or ("nerve" if args.spawn_nerve else args.bootstrap),
        "spawned_nerve": bool(args.spawn_nerve),
        "quick": bool(args.quick),
        "client_cpu": client_cpu if client_pinned else None,
        "broker_cpu": None,
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "producer_config": PRODUCER_CONFIG,
        "consumer_config": CONSUMER_CONFIG,
        "consume_batch": CONSUME_BATCH,
        "mb_unit": "MiB (1048576 bytes) of message payload",
    }

    runs: list[CaseResult] = []
    peak_rss: float | None = None
    failure: BaseException | None = None
    try:
        if args.spawn_nerve:
            command = args.nerve_cmd.split() if args.nerve_cmd else None
            broker_cpu = None if args.no_pin else args.broker_cpu
            with SpawnedBroker(command=command, cpu=broker_cpu, keep_data=args.keep_data) as broker:
                meta["bootstrap"] = broker.bootstrap
                meta["broker_cpu"] = broker_cpu if broker.pinned else None
                print(f"nerve broker listening on {broker.bootstrap} (pid {broker.process.pid})")
                try:
                    run_all(broker.bootstrap, specs, args, runs, broker=broker)
                finally:
                    peak_rss = broker.peak_rss_mb
        else:
            meta["bootstrap"] = args.bootstrap
            run_all(args.bootstrap, specs, args, runs)
    except (BenchError, RuntimeError, TimeoutError, KafkaException, OSError) as exc:
        failure = exc

    results = median_per_case(runs)
    targets = evaluate_targets(results, peak_rss)
    if results:
        print()
        if args.repeat > 1:
            print(f"median of {args.repeat} runs per case")
        print(format_table(results, show_rss=peak_rss is not None))
        print()
        print(_targets_summary(targets))

    if args.json:
        document = {
            "meta": meta,
            "targets": targets,
            "cases": [r.to_json() for r in results],
            "runs": [r.to_json() for r in runs],
            "broker_peak_rss_mb": None if peak_rss is None else round(peak_rss, 1),
            "error": None if failure is None else f"{type(failure).__name__}: {failure}",
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")

    if failure is not None:
        print(f"error: {type(failure).__name__}: {failure}", file=sys.stderr)
        return 1
    if args.fail_on_miss and not all(t["met"] for t in targets.values()):
        return 2
    return 0


def _targets_summary(targets: dict[str, Any]) -> str:
    """One line per target: the measured figure, the bound and whether it is met."""
    lines = ["targets (1 KiB cases, worst partition count):"]
    names = {
        "produce_1kb_mb_s": ("produce", "MB/s", ">="),
        "consume_1kb_mb_s": ("consume", "MB/s", ">="),
        "broker_peak_rss_mb": ("broker peak RSS", "MB", "<"),
    }
    for key, (label, unit, op) in names.items():
        if key not in targets:
            continue
        t = targets[key]
        value = t.get("worst", t.get("peak"))
        bound = t.get("target_min", t.get("target_max"))
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"  {label:<16} {value:>8.1f} {unit:<5} target {op} {bound:.0f}  {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
