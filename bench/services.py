"""A pass-through service (consume, transform, emit) on one broker: nerve beside FastStream.

The same N events (small JSON, CloudEvents binary-mode headers, keyed by user) are preloaded
once into an 8-partition input topic. Each case then runs in a fresh child process pinned to
its own CPU, in a new consumer group from the earliest offset, and turns every ``Tx`` into a
``TxOut`` on a new output topic, carrying the CloudEvents envelope forward (new id, source,
type and time; correlation and causation ids from the input):

* ``nerve``: a ``nerve.service.Service`` with one handler ``Tx -> TxOut``, run by
  ``ServiceRunner`` with its defaults (batches of 500, at-least-once: a batch's emits are
  acknowledged before its offsets are stored).
* ``faststream-batch``: FastStream's confluent ``KafkaBroker`` with a batch subscriber
  (``batch=True, max_records=500``), each output published with ``no_confirm=True`` and the
  batch's confirmations awaited together, producer ``linger.ms=5`` and idempotence like nerve's.
* ``faststream``: FastStream's default per-message subscriber, each output awaited with
  ``broker.publish`` (FastStream's own producer defaults).
* ``raw``: no framework, the ceiling of the Python client on this machine: a confluent-kafka
  loop doing the same work by hand (``json`` in and out, the same header update, batches of
  500 flushed before their offsets are stored).

The clock runs from the first event a handler sees to the N-th output acknowledged by the
broker; afterwards the parent checks that the output topic holds exactly N records. Rounds
alternate the cases so that drift on a noisy machine hits them all.

    python bench/services.py                        # spawn nerve, 200,000 events, 2 rounds
    python bench/services.py --bootstrap HOST:PORT --cases nerve,faststream-batch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _broker import SpawnedBroker, pin_current_process

CASES = ("nerve", "faststream-batch", "faststream", "raw")
BASELINE = "faststream-batch"
PARTITIONS = 8
BATCH = 500
USERS = 1000


# -- setup, in the parent ----------------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        ready = topic is not None and topic.error is None and len(topic.partitions) == partitions
        if ready and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topic {name} has no leaders after 30 s")


def preload(bootstrap: str, topic: str, count: int) -> float:
    """Write ``count`` input events as nerve writes them; returns the seconds it took."""
    from nerve.service.envelope import to_headers
    from nerve.service.events import Meta

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
        }
    )
    failures = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal failures
        if err is not None:
            failures += 1

    rng = random.Random(17)
    start = time.perf_counter()
    for n in range(count):
        user = f"u{rng.randrange(USERS)}"
        value = json.dumps(
            {"id": f"tx-{n}", "amount": round(rng.uniform(1, 500), 2), "user": user},
            separators=(",", ":"),
        ).encode()
        headers = to_headers(Meta(source="/bench/preload", type="bench.tx"))
        while True:
            try:
                producer.produce(
                    topic, value, key=user.encode(), headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.01)
        if n % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining or failures:
        raise RuntimeError(f"preload: {failures} failed and {remaining} unacknowledged")
    return time.perf_counter() - start


def topic_size(bootstrap: str, topic: str) -> int:
    """Records in a topic: the sum of its partitions' high watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-services-check"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def run_case(case: str, bootstrap: str, in_topic: str, events: int, cpu: int | None) -> dict:
    """One case in a fresh child process on a new output topic and group."""
    tag = uuid.uuid4().hex[:8]
    out_topic = f"bench-svc-out-{case}-{tag}"
    create_topic(bootstrap, out_topic)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        case,
        "--bootstrap",
        bootstrap,
        "--in-topic",
        in_topic,
        "--out-topic",
        out_topic,
        "--group",
        f"bench-svc-{case}-{tag}",
        "--events",
        str(events),
    ]
    if cpu is not None:
        argv += ["--service-cpu", str(cpu)]
    if os.environ.get("BENCH_PROFILE"):
        argv = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            f"{os.environ['BENCH_PROFILE']}-{case}.prof",
            *argv[1:],
        ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{case} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    written = topic_size(bootstrap, out_topic)
    if written != events:
        raise RuntimeError(f"{case}: the output topic holds {written} records, not {events}")
    result["case"] = case
    result["events_per_s"] = events / result["seconds"]
    return result


# -- the workers, each in its own process ------------------------------------------------------


def _out_headers(incoming: dict[str, str], source: str, type_: str) -> dict[str, str]:
    """The CloudEvents envelope of an output, derived from its input's as nerve does it."""
    headers = dict(incoming)
    cause = incoming.get("ce_id", "")
    headers["ce_id"] = uuid.uuid4().hex
    headers["ce_source"] = source
    headers["ce_type"] = type_
    headers["ce_time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    headers["ce_correlationid"] = incoming.get("ce_correlationid") or cause
    headers["ce_causationid"] = cause
    return headers


async def nerve_worker(args: argparse.Namespace) -> dict:
    from nerve.service import Event, Service
    from nerve.service.config import RunConfig
    from nerve.service.runtime import ServiceRunner

    class Tx(Event, topic=args.in_topic, key="user", type="bench.tx"):
        id: str
        amount: float
        user: str

    class TxOut(Event, topic=args.out_topic, key="user", type="bench.tx-out"):
        id: str
        cents: int
        user: str

    service = Service(args.group, start="earliest")
    first: list[float] = []

    @service.on(Tx)
    async def transform(tx: Tx) -> TxOut:
        if not first:
            first.append(time.perf_counter())
        return TxOut(id=tx.id, cents=round(tx.amount * 100), user=tx.user)

    finished = asyncio.Event()
    end: list[float] = []

    class Runner(ServiceRunner):
        # handle_batch returns once the batch's emits are acknowledged and its offsets stored.
        async def handle_batch(self, messages: list[Any]) -> None:
            await super().handle_batch(messages)
            if self.events_out >= args.events and not end:
                end.append(time.perf_counter())
                finished.set()

    config = RunConfig(bootstrap_servers=args.bootstrap, registry_url=None, batch_size=BATCH)
    runner = Runner(service, config)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, runner.start)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.wait(
        [task, asyncio.create_task(finished.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    stop.set()
    await task
    await loop.run_in_executor(None, runner.close)
    return {
        "seconds": end[0] - first[0],
        "handled": runner.events_in,
        "emitted": runner.events_out,
        "config": {"batch_size": config.batch_size, "poll_timeout_s": config.poll_timeout_s},
    }


async def faststream_worker(args: argparse.Namespace, batch: bool) -> dict:
    from faststream.confluent import KafkaBroker, KafkaMessage
    from pydantic import BaseModel

    class Tx(BaseModel):
        id: str
        amount: float
        user: str

    class TxOut(BaseModel):
        id: str
        cents: int
        user: str

    source = f"/faststream/services/{args.group}"
    out_type = "bench.tx-out"
    # Per-message logging is off: nerve logs nothing per event either.
    if batch:
        broker = KafkaBroker(args.bootstrap, linger_ms=5, enable_idempotence=True, logger=None)
    else:
        broker = KafkaBroker(args.bootstrap, logger=None)
    first: list[float] = []
    end: list[float] = []
    finished = asyncio.Event()
    emitted = 0

    def count(n: int) -> None:
        nonlocal emitted
        emitted += n
        if emitted >= args.events and not end:
            end.append(time.perf_counter())
            finished.set()

    if batch:

        @broker.subscriber(
            args.in_topic,
            group_id=args.group,
            auto_offset_reset="earliest",
            batch=True,
            max_records=BATCH,
        )
        async def transform_batch(body: list[Tx], msg: KafkaMessage) -> None:
            if not first:
                first.append(time.perf_counter())
            confirms = []
            for tx, headers in zip(body, msg.batch_headers, strict=True):
                out = TxOut(id=tx.id, cents=round(tx.amount * 100), user=tx.user)
                confirms.append(
                    await broker.publish(
                        out,
                        topic=args.out_topic,
                        key=out.user.encode(),
                        headers=_out_headers(headers, source, out_type),
                        no_confirm=True,
                    )
                )
            await asyncio.gather(*confirms)
            count(len(confirms))

    else:

        @broker.subscriber(args.in_topic, group_id=args.group, auto_offset_reset="earliest")
        async def transform(tx: Tx, msg: KafkaMessage) -> None:
            if not first:
                first.append(time.perf_counter())
            out = TxOut(id=tx.id, cents=round(tx.amount * 100), user=tx.user)
            await broker.publish(
                out,
                topic=args.out_topic,
                key=out.user.encode(),
                headers=_out_headers(msg.headers, source, out_type),
            )
            count(1)

    async with broker:
        await broker.start()
        await finished.wait()
    return {
        "seconds": end[0] - first[0],
        "emitted": emitted,
        "config": {
            "batch": batch,
            "max_records": BATCH if batch else None,
            "linger_ms": 5 if batch else 0,
            "enable_idempotence": batch,
            "publish": "no_confirm, gathered per batch" if batch else "awaited per message",
        },
    }


def raw_worker(args: argparse.Namespace) -> dict:
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
        }
    )
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    consumer.subscribe([args.in_topic])
    source = f"/raw/services/{args.group}".encode()
    emitted = 0
    first = 0.0
    while emitted < args.events:
        messages = consumer.consume(BATCH, 0.1)
        if not messages:
            continue
        if not first:
            first = time.perf_counter()
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            tx = json.loads(message.value())
            out = {"id": tx["id"], "cents": round(tx["amount"] * 100), "user": tx["user"]}
            headers = dict(message.headers() or ())
            cause = headers.get("ce_id", b"")
            headers["ce_id"] = uuid.uuid4().hex.encode()
            headers["ce_source"] = source
            headers["ce_type"] = b"bench.tx-out"
            headers["ce_time"] = datetime.now(UTC).isoformat(timespec="milliseconds").encode()
            headers["ce_correlationid"] = headers.get("ce_correlationid") or cause
            headers["ce_causationid"] = cause
            producer.produce(
                args.out_topic,
                json.dumps(out).encode(),
                key=message.key(),
                headers=list(headers.items()),
            )
            last[(message.topic(), message.partition())] = message.offset()
        if producer.flush(30):
            raise RuntimeError("raw: emits not acknowledged within 30 s")
        consumer.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()])
        emitted += len(messages)
    end = time.perf_counter()
    consumer.close()
    return {"seconds": end - first, "emitted": emitted, "config": {"batch": BATCH}}


def worker(args: argparse.Namespace) -> int:
    if args.service_cpu is not None:
        pin_current_process(args.service_cpu)
    if args.worker == "nerve":
        result = asyncio.run(nerve_worker(args))
    elif args.worker == "raw":
        result = raw_worker(args)
    else:
        result = asyncio.run(faststream_worker(args, batch=args.worker == "faststream-batch"))
    print(json.dumps(result))
    return 0


# -- the report --------------------------------------------------------------------------------


def table(medians: dict[str, dict], events: int) -> str:
    base = medians.get(BASELINE, {}).get("events_per_s")
    lines = [
        f"| case | events | seconds | events/s | ratio to {BASELINE} |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case, row in medians.items():
        ratio = f"{row['events_per_s'] / base:.2f}" if base else "-"
        lines.append(
            f"| {case} | {events:,} | {row['seconds']:.2f} | {row['events_per_s']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import confluent_kafka

    found = {"python": platform.python_version(), "librdkafka": confluent_kafka.libversion()[0]}
    for name in ("nerve", "faststream", "pydantic", "confluent-kafka"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeat", type=int, default=2, help="rounds, cases alternating")
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--service-cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown")
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--in-topic", help=argparse.SUPPRESS)
    parser.add_argument("--out-topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    service_cpu = None if args.no_pin else args.service_cpu
    if service_cpu is not None:
        pin_current_process(service_cpu)
    spawned = None
    bootstrap = args.bootstrap
    if not bootstrap:
        spawned = SpawnedBroker(
            cpu=None if args.no_pin else args.broker_cpu,
            configs={"log.fsync.policy": "never"},
        ).__enter__()
        bootstrap = spawned.bootstrap
        print(f"nerve broker on {bootstrap}")
    runs: list[dict] = []
    try:
        in_topic = f"bench-svc-in-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, in_topic)
        took = preload(bootstrap, in_topic, args.events)
        print(f"preloaded {args.events:,} events into {in_topic} in {took:.1f} s")
        for round_no in range(args.repeat):
            order = cases if round_no % 2 == 0 else cases[::-1]
            for case in order:
                if spawned is not None:
                    spawned.check_alive()
                result = run_case(case, bootstrap, in_topic, args.events, service_cpu)
                result["round"] = round_no + 1
                runs.append(result)
                print(
                    f"round {round_no + 1} {case:>16}: {result['events_per_s']:>9,.0f} events/s"
                    f"  ({result['seconds']:.2f} s)"
                )
    finally:
        peak_rss = spawned.peak_rss_mb if spawned is not None else None
        if spawned is not None:
            spawned.__exit__(None, None, None)

    medians: dict[str, dict] = {}
    for case in cases:
        rates = [r["events_per_s"] for r in runs if r["case"] == case]
        rate = statistics.median(rates)
        medians[case] = {"events_per_s": rate, "seconds": args.events / rate, "rounds": rates}
    print(f"\nmedian of {args.repeat} rounds, {args.events:,} events, {PARTITIONS} partitions")
    print(table(medians, args.events))
    nerve_rate = medians.get("nerve", {}).get("events_per_s")
    base = medians.get(BASELINE, {}).get("events_per_s")
    if nerve_rate:
        print(f"target >= 50,000 events/s: {'ok' if nerve_rate >= 50_000 else 'MISS'}")
    if nerve_rate and base:
        print(f"target >= 2x {BASELINE}: {'ok' if nerve_rate >= 2 * base else 'MISS'}")
    meta = {
        "date": date.today().isoformat(),
        "bootstrap": bootstrap,
        "spawned_nerve": spawned is not None,
        "broker_cpu": None if args.no_pin or spawned is None else args.broker_cpu,
        "service_cpu": service_cpu,
        "events": args.events,
        "partitions": PARTITIONS,
        "broker_peak_rss_mb": peak_rss,
        "versions": versions(),
    }
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "medians": medians, "runs": runs}, indent=2))
    if args.markdown:
        args.markdown.write_text(table(medians, args.events) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
