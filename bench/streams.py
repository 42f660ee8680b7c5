"""Stream processing on one broker: nerve's streams beside Quix Streams, Faust and Kafka Streams.

The same input (``--events`` events over ``--keys`` keys, text values, record timestamps
ten events per millisecond of event time, in order per partition) is preloaded once into an
8-partition topic of a nerve broker this script starts (pinned to CPU 0). Each system then runs
each workload in a fresh child process pinned to CPU 1, in a new consumer group from the
earliest offset, emitting on every update:

* ``tumbling``: a count by key in 10 s tumbling windows (grace 2 s);
* ``session``: a count by key in sessions with a 5 s inactivity gap (grace 2 s);
* ``join``: a stream-table join, each event joined with its key's row of a table topic
  (``--keys`` rows preloaded with timestamps before the stream's; an inner join).

Systems: ``nerve`` (``Service.stream(...)``, at-least-once, RocksDB state), ``quix`` (Quix
Streams, its RocksDB state), ``faust`` (faust-streaming, a windowed table on its memory store;
it has no session windows), ``kstreams`` (Kafka Streams 4.4, one stream thread, no record cache:
the ceiling). Quix Streams and Faust are installed each in its own venv under
``~/.cache/nerve/bench-streams`` (``--setup`` makes them), never into nerve's.

A run is timed from the first output record the parent sees on the output topic to the last
time the output grew, once the group has committed every input offset; the parent polls high
watermarks and committed offsets every 50 ms, so the clock is the same for every system.

Two more figures for nerve alone: ``latency`` (p50/p99 event-to-output latency of the tumbling
count at half of nerve's measured peak rate: a paced producer stamps each record with its send
time, a consumer reads the outputs, which carry the input's timestamp; both pinned beside the
broker; ``--latency-rate`` fixes the rate, ``--latency-baseline SRC`` measures another source
tree alternately in the same run) and ``restore`` (a plain count over ``--restore-keys``
distinct keys, then a new process with an empty state directory restores the changelog: the
seconds nerve logs for it).

    python bench/streams.py --setup                 # make the Quix and Faust venvs
    python bench/streams.py                         # 200,000 events, every system
    python bench/streams.py --full                  # 1,000,000 events (the issue's size)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

if "--worker" not in sys.argv:  # workers run in the other systems' venvs, without these
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _broker import SpawnedBroker, pin_current_process

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("NERVE_CACHE", Path.home() / ".cache" / "nerve")) / "bench-streams"
KSTREAMS_SOURCES = HERE / "kstreams"
SYSTEMS = ("nerve", "quix", "faust", "kstreams")
WORKLOADS = ("tumbling", "session", "join")
BASELINE = "quix"
PARTITIONS = 8
WINDOW_S = 10
GAP_S = 5
GRACE_S = 2
EVENTS_PER_MS = 10
SUPPORTED = {"faust": {"tumbling"}}  # Faust has no session windows and no joins


# -- setup -------------------------------------------------------------------------------------


def venv_python(name: str) -> Path:
    return CACHE / name / "bin" / "python"


def setup_venvs() -> None:
    """Quix Streams and Faust, newest from PyPI, each in a venv of its own."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for name, package in (("quix", "quixstreams"), ("faust", "faust-streaming")):
        if not venv_python(name).exists():
            subprocess.run([sys.executable, "-m", "venv", str(CACHE / name)], check=True)
        subprocess.run(
            [str(venv_python(name)), "-m", "pip", "install", "-q", "-U", package], check=True
        )


def kstreams_classpath() -> str:
    """The Kafka Streams app's classpath, built once with Maven (as tests/streams/reference)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in KSTREAMS_SOURCES.rglob("*") if p.is_file()):
        if "target" not in path.parts:
            digest.update(str(path.relative_to(KSTREAMS_SOURCES)).encode() + path.read_bytes())
    cache = CACHE / f"kstreams-{digest.hexdigest()[:16]}"
    if not (cache / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix="kstreams-", dir=CACHE))
        build = staging / "build"
        shutil.copytree(KSTREAMS_SOURCES, build, ignore=shutil.ignore_patterns("target"))
        done = subprocess.run(
            ["mvn", "-q", "-B", "package", "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'libs'}"],
            cwd=build, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"building {KSTREAMS_SOURCES} failed:\n{done.stdout[-4000:]}")
        (jar,) = (build / "target").glob("streams-bench-*.jar")
        shutil.copy(jar, staging / "bench.jar")
        shutil.rmtree(build)
        (staging / ".complete").touch()
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
    return f"{cache / 'bench.jar'}:{cache / 'libs'}/*"


def version_of(system: str) -> str:
    if system == "nerve":
        return metadata.version("nerve")
    if system == "kstreams":
        return "4.4.0"
    package = {"quix": "quixstreams", "faust": "faust-streaming"}[system]
    code = f"from importlib.metadata import version; print(version({package!r}))"
    done = subprocess.run([str(venv_python(system)), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "absent"


# -- topics, input and watching, in the parent -------------------------------------------------


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


def producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
        }
    )


def preload(
    bootstrap: str, topic: str, count: int, keys: int, distinct: bool = False, table: bool = False
) -> float:
    """``count`` events keyed ``k<n>`` (random of ``keys``, or all distinct), each partition in
    timestamp order; a table (``table``) is every key once, a minute before the events.
    Returns the seconds it took."""
    out = producer(bootstrap)
    rng = random.Random(14)
    base = (int(time.time() * 1000) // 60_000) * 60_000 - 3_600_000
    if table:
        base -= 60_000
        distinct = True
    start = time.perf_counter()
    for n in range(count):
        key = f"k{n if distinct else rng.randrange(keys)}"
        while True:
            try:
                out.produce(
                    topic,
                    str(rng.randrange(1, 1000)).encode(),
                    key=key.encode(),
                    timestamp=base + n // EVENTS_PER_MS,
                )
                break
            except BufferError:
                out.poll(0.01)
        if n % 10_000 == 0:
            out.poll(0)
    if out.flush(120):
        raise RuntimeError("preload: records left unacknowledged")
    return time.perf_counter() - start


class Watch:
    """Sums of an output topic's high watermarks and of a group's committed offsets."""

    def __init__(self, bootstrap: str, out_topic: str, in_topic: str, group: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch"})
        self.out = [TopicPartition(out_topic, p) for p in range(PARTITIONS)]
        self.request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(in_topic, p) for p in range(PARTITIONS)]
        )

    def output(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.out)

    def committed(self) -> int:
        try:
            found = self.admin.list_consumer_group_offsets([self.request])
            result = next(iter(found.values())).result(10)
        except Exception:
            return 0
        return sum(max(tp.offset, 0) for tp in result.topic_partitions)

    def close(self) -> None:
        self.consumer.close()


def worker_argv(system: str, workload: str, args: dict[str, Any]) -> list[str]:
    if system == "kstreams":
        return [
            "java", "-XX:+UseSerialGC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", kstreams_classpath(), "dev.nerve.bench.BenchApp", workload, args["in_topic"],
            args["out_topic"], args["bootstrap"], args["group"], args["state_dir"],
            args.get("table_topic", ""),
        ]  # fmt: skip
    python = sys.executable if system == "nerve" else str(venv_python(system))
    return [python, str(Path(__file__).resolve()), "--worker", json.dumps({**args,
            "system": system, "workload": workload})]  # fmt: skip


def run_case(
    system: str, workload: str, bootstrap: str, in_topic: str, events: int, cpu: int | None,
    max_seconds: float = 1800.0, table_topic: str = "",
) -> dict[str, Any]:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    out_topic = f"bench-streams-out-{system}-{workload}-{tag}"
    group = f"bench-streams-{system}-{workload}-{tag}"
    create_topic(bootstrap, out_topic)
    state_dir = tempfile.mkdtemp(prefix=f"bench-streams-{system}-")
    args = {"bootstrap": bootstrap, "in_topic": in_topic, "out_topic": out_topic,
            "group": group, "state_dir": state_dir, "table_topic": table_topic}  # fmt: skip
    argv = worker_argv(system, workload, args)
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    log_path = Path(state_dir) / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
    watch = Watch(bootstrap, out_topic, in_topic, group)
    first = last_growth = 0.0
    seen = 0
    deadline = time.monotonic() + 1800
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{system} {workload} exited: {log_path.read_text()[-3000:]}")
            now = time.perf_counter()
            written = watch.output()
            if written > seen:
                seen, last_growth = written, now
                if not first:
                    first = now
            if first and watch.committed() >= events and now - last_growth > 1.0:
                break
            if first and now - first > max_seconds:
                # Too slow to finish: the rate so far, from the outputs where each event makes
                # one (tumbling, join), else from what the group has committed.
                done = seen if workload in ("tumbling", "join") else watch.committed()
                seconds = now - first
                return {"system": system, "workload": workload, "seconds": seconds,
                        "outputs": seen, "events_per_s": done / seconds,
                        "partial": f"{done:,} of {events:,} events in {seconds:.0f} s"}  # fmt: skip
            if time.monotonic() > deadline:
                raise TimeoutError(f"{system} {workload}: not done after 30 minutes")
            time.sleep(0.05)
    finally:
        watch.close()
        stop_worker(proc)
        shutil.rmtree(state_dir, ignore_errors=True)
    seconds = last_growth - first
    return {"system": system, "workload": workload, "seconds": seconds, "outputs": seen,
            "events_per_s": events / seconds}  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()  # the Java app stops at the end of its input
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- latency and restore (nerve) ---------------------------------------------------------------


def take(consumer: Consumer, size: int, timeout: float) -> list[Any]:
    """What has arrived, without waiting for ``size`` records (``consume(size, timeout)`` waits
    the whole timeout for the batch to fill, which would count as latency)."""
    messages = consumer.consume(size, 0)
    if not messages:
        messages = consumer.consume(1, timeout)
        if messages:
            messages += consumer.consume(size - 1, 0)
    return messages


def measure_latency(
    bootstrap: str, rate: float, seconds: float, cpu: int | None, source: str | None = None
) -> dict:
    """p50/p99 from send to the output read back, at ``rate`` events/s of fresh input.
    ``source``: a nerve source tree (its ``src``) the service runs from instead of this one."""
    tag = uuid.uuid4().hex[:8]
    in_topic, out_topic = f"bench-streams-live-{tag}", f"bench-streams-live-out-{tag}"
    create_topic(bootstrap, in_topic)
    create_topic(bootstrap, out_topic)
    state_dir = tempfile.mkdtemp(prefix="bench-streams-latency-")
    args = {"bootstrap": bootstrap, "in_topic": in_topic, "out_topic": out_topic,
            "group": f"bench-streams-latency-{tag}", "state_dir": state_dir}  # fmt: skip
    argv = worker_argv("nerve", "tumbling", args)
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    log_path = Path(state_dir) / "worker.log"
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-lat-{tag}",
                       "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                       "fetch.queue.backoff.ms": 10})  # fmt: skip
    reader.subscribe([out_topic])
    latencies: list[float] = []
    sent = 0
    warmup_ms = 0.0
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            messages = take(reader, 1000, 0.05)
            now_ms = time.time() * 1000
            for message in messages:
                if message.error() is None:
                    stamp = message.timestamp()[1]
                    if stamp >= warmup_ms:
                        latencies.append(now_ms - stamp)

    try:
        # The service is up once a first record comes back.
        out = producer(bootstrap)
        deadline = time.monotonic() + 120
        while not latencies and time.monotonic() < deadline:
            out.produce(in_topic, b"1", key=b"warm", timestamp=int(time.time() * 1000))
            out.flush(5)
            for message in reader.consume(100, 0.5):
                if message.error() is None:
                    latencies.append(0.0)
        if not latencies:
            raise RuntimeError(f"nerve latency worker silent: {log_path.read_text()[-3000:]}")
        lines = log_path.read_text().splitlines()
        loaded_from = next((x.split("nerve from ", 1)[1] for x in lines if "nerve from " in x), "?")
        thread = threading.Thread(target=read, daemon=True)
        warmup_ms = time.time() * 1000 + 2000  # the first 2 s are not counted
        latencies.clear()
        thread.start()
        rng = random.Random(5)
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate)
            now_ms = int(time.time() * 1000)
            while sent < due:
                key = f"k{rng.randrange(100_000)}".encode()
                try:
                    out.produce(in_topic, b"1", key=key, timestamp=now_ms)
                except BufferError:
                    out.poll(0.001)
                    continue
                sent += 1
            out.poll(0)
            time.sleep(0.001)
        out.flush(30)
        time.sleep(2.0)
        stop.set()
        thread.join(5)
    finally:
        reader.close()
        stop_worker(proc)
        shutil.rmtree(state_dir, ignore_errors=True)
    ordered = sorted(latencies)
    if not ordered:
        raise RuntimeError("no outputs read in the latency run")

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"rate": rate, "sent": sent, "measured": len(ordered), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": ordered[-1], "nerve": loaded_from}  # fmt: skip


def measure_restore(bootstrap: str, keys: int, cpu: int | None) -> dict:
    """A count over ``keys`` distinct keys, then its state restored by a new process."""
    tag = uuid.uuid4().hex[:8]
    in_topic, out_topic = f"bench-streams-keys-{tag}", f"bench-streams-keys-out-{tag}"
    create_topic(bootstrap, in_topic)
    create_topic(bootstrap, out_topic)
    preload(bootstrap, in_topic, keys, keys, distinct=True)
    group = f"bench-streams-restore-{tag}"
    first = run_restore_worker(bootstrap, in_topic, out_topic, group, keys, cpu, wait=True)
    second = run_restore_worker(bootstrap, in_topic, out_topic, group, keys, cpu, wait=False)
    return {"keys": keys, "build_s": first["elapsed_s"], **second}


def run_restore_worker(
    bootstrap: str, in_topic: str, out_topic: str, group: str, keys: int,
    cpu: int | None, *, wait: bool,
) -> dict:  # fmt: skip
    state_dir = tempfile.mkdtemp(prefix="bench-streams-restore-")
    args = {"bootstrap": bootstrap, "in_topic": in_topic, "out_topic": out_topic,
            "group": group, "state_dir": state_dir}  # fmt: skip
    argv = worker_argv("nerve", "count", args)
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    log_path = Path(state_dir) / "worker.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
    watch = Watch(bootstrap, out_topic, in_topic, group)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"restore worker exited: {log_path.read_text()[-3000:]}")
            text = log_path.read_text()
            if wait and watch.committed() >= keys:
                return {"elapsed_s": time.perf_counter() - started}
            if not wait and "restored (" in text:
                line = next(x for x in text.splitlines() if "restored (" in x)
                records = int(line.split("restored (")[1].split()[0])
                seconds = float(line.split(") in ")[1].split()[0])
                return {"restored_records": records, "restore_s": seconds,
                        "process_start_to_restored_s": time.perf_counter() - started}  # fmt: skip
            if time.perf_counter() - started > 900:
                raise TimeoutError("restore run not done after 15 minutes")
            time.sleep(0.1)
    finally:
        watch.close()
        stop_worker(proc)
        shutil.rmtree(state_dir, ignore_errors=True)


# -- the workers, each in its own process and interpreter --------------------------------------


def nerve_worker(a: dict[str, Any]) -> None:
    import asyncio
    import logging
    from datetime import timedelta

    import nerve
    from nerve import Service
    from nerve.service.config import RunConfig
    from nerve.service.host import serve
    from nerve.streams import session, tumbling

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(f"nerve from {Path(nerve.__file__).resolve().parent.parent}", file=sys.stderr, flush=True)
    svc = Service(a["group"], exactly_once=False)
    stream = svc.stream(a["in_topic"], time="record")
    grouped = stream.group_by_key()
    if a["workload"] == "join":
        table = svc.stream(a["table_topic"], time="record").to_table()
        stream.join(table, lambda left, right: f"{left}|{right}").to(a["out_topic"])
    elif a["workload"] == "count":
        grouped.count().to(a["out_topic"], value=str)
    else:
        windows = (
            tumbling(timedelta(seconds=WINDOW_S))
            if a["workload"] == "tumbling"
            else session(timedelta(seconds=GAP_S))
        )
        grouped.window(windows, grace=timedelta(seconds=GRACE_S)).count().to(
            a["out_topic"], key=lambda _k, w: f"{w.key}@{w.start}", value=lambda w: str(w.value)
        )
    config = RunConfig(bootstrap_servers=a["bootstrap"], registry_url=None,
                       state_dir=a["state_dir"])  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve([svc], config, stop)

    asyncio.run(main())


def quix_worker(a: dict[str, Any]) -> None:
    from datetime import timedelta

    from quixstreams import Application

    app = Application(
        broker_address=a["bootstrap"], consumer_group=a["group"], auto_offset_reset="earliest",
        state_dir=a["state_dir"], loglevel="WARNING",
    )  # fmt: skip
    source = app.topic(a["in_topic"], key_deserializer="str", value_deserializer="str")
    out = app.topic(a["out_topic"], key_serializer="str", value_serializer="str")
    sdf = app.dataframe(source)
    if a["workload"] == "join":
        rows = app.topic(a["table_topic"], key_deserializer="str", value_deserializer="str")
        joined = sdf.join_asof(app.dataframe(rows), how="inner", on_merge=lambda x, y: f"{x}|{y}")
        joined.to_topic(out)
        app.run()
        return
    grace = timedelta(seconds=GRACE_S)
    if a["workload"] == "tumbling":
        windowed = sdf.tumbling_window(timedelta(seconds=WINDOW_S), grace_ms=grace)
    else:
        windowed = sdf.session_window(timedelta(seconds=GAP_S), grace_ms=grace)
    sdf = windowed.count().current()
    sdf = sdf.apply(lambda w: str(w["value"]))
    sdf.to_topic(out)
    app.run()


def faust_worker(a: dict[str, Any]) -> None:
    from datetime import timedelta

    import faust

    app = faust.App(
        a["group"], broker=f"kafka://{a['bootstrap']}", store="memory://",
        topic_partitions=PARTITIONS, web_enabled=False, consumer_auto_offset_reset="earliest",
        datadir=a["state_dir"],
    )  # fmt: skip
    source = app.topic(a["in_topic"], key_serializer="raw", value_serializer="raw")
    out = app.topic(a["out_topic"], key_serializer="raw", value_serializer="raw")
    counts = (
        app.Table("counts", default=int, partitions=PARTITIONS)
        .tumbling(timedelta(seconds=WINDOW_S), expires=timedelta(seconds=WINDOW_S + GRACE_S))
        .relative_to_stream()
    )

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            key = event.key.decode()
            counts[key] += 1
            await out.send(key=event.key, value=str(counts[key].current()).encode())

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def worker(spec: str) -> int:
    a = json.loads(spec)
    {"nerve": nerve_worker, "quix": quix_worker, "faust": faust_worker}[a["system"]](a)
    return 0


# -- the report --------------------------------------------------------------------------------


def table(medians: dict[tuple[str, str], dict], events: int) -> str:
    lines = [
        f"| workload | system | events | seconds | events/s | ratio to {BASELINE} | outputs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (workload, system), row in medians.items():
        base = medians.get((workload, BASELINE), {}).get("events_per_s")
        ratio = f"{row['events_per_s'] / base:.2f}" if base else "-"
        lines.append(
            f"| {workload} | {system} | {events:,} | {row['seconds']:.2f} |"
            f" {row['events_per_s']:,.0f} | {ratio} | {row['outputs']:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 events, 1,000,000 keys")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--restore-keys", type=int, default=200_000)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=150.0,
                        help="a case not done by then reports its rate so far")  # fmt: skip
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-restore", action="store_true")
    parser.add_argument("--latency-seconds", type=float, default=12.0)
    parser.add_argument(
        "--latency-rate",
        type=float,
        help="events/s of the latency run (default: half the measured peak)",
    )
    parser.add_argument("--latency-repeat", type=int, default=1)
    parser.add_argument("--latency-baseline", metavar="SRC",
                        help="also measure latency with nerve from this source tree (its src),"
                        " alternating with this one in the same run: before and after")  # fmt: skip
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--worker-cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--setup", action="store_true", help="make the Quix and Faust venvs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.setup:
        setup_venvs()
        return 0
    if args.full:
        args.events, args.restore_keys = 1_000_000, 1_000_000
    systems = [s for s in args.systems.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    for system in systems:
        if system in ("quix", "faust") and not venv_python(system).exists():
            parser.error(f"{system} is not installed: run with --setup first")
    worker_cpu = None if args.no_pin else args.worker_cpu
    broker_cpu = None if args.no_pin else args.broker_cpu
    if worker_cpu is not None:
        pin_current_process(worker_cpu)
    if "kstreams" in systems:
        kstreams_classpath()
    found_versions = {s: version_of(s) for s in systems}
    runs: list[dict] = []
    latency = restore = None
    latency_runs: list[dict] = []
    with SpawnedBroker(
        cpu=broker_cpu, configs={"log.fsync.policy": "never"}, start_timeout_s=120
    ) as broker:
        bootstrap = broker.bootstrap
        print(f"nerve broker on {bootstrap}; versions {found_versions}")
        in_topic = f"bench-streams-in-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, in_topic)
        took = preload(bootstrap, in_topic, args.events, args.keys)
        print(f"preloaded {args.events:,} events over {args.keys:,} keys in {took:.1f} s")
        table_topic = f"bench-streams-table-{uuid.uuid4().hex[:8]}"
        if "join" in workloads:
            create_topic(bootstrap, table_topic)
            preload(bootstrap, table_topic, args.keys, args.keys, table=True)
        for round_no in range(args.repeat):
            order = systems if round_no % 2 == 0 else systems[::-1]
            for workload in workloads:
                for system in order:
                    if workload not in SUPPORTED.get(system, set(WORKLOADS)):
                        continue
                    broker.check_alive()
                    result = run_case(system, workload, bootstrap, in_topic, args.events,
                                      worker_cpu, args.max_seconds, table_topic)  # fmt: skip
                    result["round"] = round_no + 1
                    runs.append(result)
                    partial = result.get("partial", "")
                    print(f"round {round_no + 1} {workload:>9} {system:>9}:"
                          f" {result['events_per_s']:>9,.0f} events/s ({result['seconds']:.2f} s,"
                          f" {result['outputs']:,} outputs) {partial}", flush=True)  # fmt: skip
        medians: dict[tuple[str, str], dict] = {}
        for workload in workloads:
            for system in systems:
                rows = [r for r in runs if r["system"] == system and r["workload"] == workload]
                if rows:
                    rate = statistics.median(r["events_per_s"] for r in rows)
                    medians[(workload, system)] = {"events_per_s": rate,
                        "seconds": args.events / rate, "outputs": rows[-1]["outputs"]}  # fmt: skip
        peak = medians.get(("tumbling", "nerve"), {}).get("events_per_s")
        latency_rate = args.latency_rate or (peak / 2 if peak else None)
        if latency_rate and not args.no_latency:
            # The load generator sits beside the broker, the service keeps its own core.
            if broker_cpu is not None:
                pin_current_process(broker_cpu)
            trees: list[str | None] = [None]
            if args.latency_baseline:
                trees.insert(0, str(Path(args.latency_baseline).resolve()))
            for round_no in range(args.latency_repeat):
                for tree in trees if round_no % 2 == 0 else trees[::-1]:
                    one = measure_latency(bootstrap, latency_rate, args.latency_seconds,
                                          worker_cpu, tree)  # fmt: skip
                    one["label"] = "baseline" if tree else "this tree"
                    latency_runs.append(one)
                    print(f"latency ({one['label']}, nerve from {one['nerve']}) at"
                          f" {one['rate']:,.0f} events/s: p50 {one['p50_ms']:.1f} ms,"
                          f" p99 {one['p99_ms']:.1f} ms, max {one['max_ms']:.0f} ms"
                          f" ({one['measured']:,} of {one['sent']:,} read)",
                          flush=True)  # fmt: skip
            mine = [r for r in latency_runs if r["label"] == "this tree"]
            latency = {"rate": latency_rate,
                       "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                       "p99_ms": statistics.median(r["p99_ms"] for r in mine)}  # fmt: skip
            if worker_cpu is not None:
                pin_current_process(worker_cpu)
        if "nerve" in systems and not args.no_restore:
            restore = measure_restore(bootstrap, args.restore_keys, worker_cpu)
            print(f"restore of {restore['keys']:,} keys: {restore['restore_s']:.2f} s", flush=True)
        peak_rss = broker.peak_rss_mb

    print(f"\nmedian of {args.repeat} round(s), {args.events:,} events, {args.keys:,} keys")
    text = table(medians, args.events)
    print(text)
    checks = []
    for workload in workloads:
        nerve = medians.get((workload, "nerve"), {}).get("events_per_s")
        base = medians.get((workload, BASELINE), {}).get("events_per_s")
        if nerve and base:
            met = "ok" if nerve >= 2 * base else "MISS"
            checks.append(f"{workload}: nerve / quix = {nerve / base:.2f} (target >= 2) {met}")
    if latency:
        met = "ok" if latency["p99_ms"] < 50 else "MISS"
        checks.append(f"p99 at {latency['rate']:,.0f}/s = {latency['p99_ms']:.1f} ms (< 50) {met}")
    if restore:
        met = "ok" if restore["restore_s"] < 10 else "MISS"
        checks.append(f"restore {restore['keys']:,} keys = {restore['restore_s']:.2f} s"
                      f" (< 10 s) {met}")  # fmt: skip
    print("\n".join(checks))
    if args.markdown:
        args.markdown.write_text(text + "\n\n" + "\n".join(f"- {c}" for c in checks) + "\n")
    if args.json:
        args.json.write_text(json.dumps({
            "date": date.today().isoformat(), "events": args.events, "keys": args.keys,
            "versions": found_versions, "python": platform.python_version(),
            "runs": runs, "latency": latency, "latency_runs": latency_runs, "restore": restore,
            "checks": checks,
            "broker_peak_rss_mb": peak_rss,
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
