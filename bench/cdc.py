"""Change data capture speed (issue 18's figures), in one run on one PostgreSQL: Debezium's
PostgreSQL connector on Kafka Connect 4.4 on nerve, the same on Apache Kafka 4.4, and
``nerve cdc postgres`` (logical decoding without a JVM) on nerve, both with its default batching
of database transactions into Kafka transactions and with ``--batch-changes 0`` (one Kafka
transaction per database transaction, what it did before batching).

Why this shape: what a team sees of CDC is how many row changes per second reach a consumer
and how long after its commit a change arrives. Each broker gets its own Connect worker (same
settings: exactly-once source support enabled, the JSON converter) and runs alone, one after the
other, so they never compete for the machine. Two cases per broker:

- throughput: ``--changes`` rows COPYed in transactions of ``--batch`` rows as fast as
  PostgreSQL takes them (the writer must outrun every pipeline; its own rate is in the table);
  changes/s from the first commit to the last change read (read_committed);
- latency: single-row transactions at ``--rate`` per second; each change's time from its
  commit (taken in the writer right after COMMIT returns) to its arrival at a consumer, p50/p99.

Beside each throughput figure, the CPU seconds the broker and the Connect worker (or the
``nerve cdc`` process) spent per 10,000 changes of it: on two shared cores, a broker that
spends more CPU leaves less for Connect, so the ratio of changes/s says little without it.
``--rounds N`` runs every pipeline N times, alternating, so a changing load shows as spread.

``--baseline REV`` also runs ``nerve cdc postgres`` as of that git revision (its ``src/``,
extracted with ``git archive``), so a change to it is measured before and after in one run.

Run `python bench/cdc.py --help`; `--markdown PATH` writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from tests._broker import BrokerProcess  # noqa: E402
from tests._connect import ConnectWorker, await_status, debezium_plugins  # noqa: E402
from tests._kafka import KafkaProcess  # noqa: E402
from tests._postgres import PostgresProcess  # noqa: E402


class Arrivals:
    """A consumer thread noting when each row id's change arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "topic.metadata.refresh.interval.ms": 500,
                "log_level": 0,
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # consume() returns when its batch is full or its timeout is over: with 0.1 s, a
            # change arriving alone was stamped up to 100 ms late (every pipeline's p50 and p99
            # had that in them); 5 ms keeps the stamp within 5 ms of the arrival.
            for msg in self._consumer.consume(1000, timeout=0.005):
                now = time.time()
                if msg.error() is None and msg.value():
                    after = json.loads(msg.value())["after"]
                    if after is not None:
                        self.seen.setdefault(after["id"], now)

    def wait(self, count: int, timeout: float) -> float:
        """Waits until ``count`` ids arrived; the time the last of them did."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(self.seen) < count:
            raise RuntimeError(f"{len(self.seen)} of {count} changes after {timeout}s")
        return max(self.seen.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def connector(pg: PostgresProcess, worker: ConnectWorker, table: str) -> str:
    name = f"bench{uuid.uuid4().hex[:8]}"
    worker.request(
        "PUT",
        f"/connectors/{name}/config",
        {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": "127.0.0.1",
            "database.port": str(pg.port),
            "database.user": pg.user,
            "database.password": "unused",
            "database.dbname": pg.database,
            "topic.prefix": name,
            "plugin.name": "pgoutput",
            "slot.name": f"{name}_slot",
            "publication.name": f"{name}_pub",
            "publication.autocreate.mode": "filtered",
            "table.include.list": f"public.{table}",
            "snapshot.mode": "no_data",
        },
        timeout=180,  # a worker that just started answers its first write slowly
    )
    await_status(worker, name, timeout=120)
    return name


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pipeline:
    """What turns a table's changes into records: a Debezium connector on a worker, or a
    ``nerve cdc postgres`` process. ``start(table)`` returns the topic; ``stop()`` ends it."""

    def __init__(
        self,
        pg: PostgresProcess,
        bootstrap: str,
        worker: ConnectWorker | None,
        options: tuple[str, ...] = (),
        source: Path | None = None,
    ) -> None:
        self.pg, self.bootstrap, self.worker, self.options = pg, bootstrap, worker, options
        self.source = source  # another version of nerve's src/ to run instead of this one
        self.name = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.broker_pid = 0

    def pid(self) -> int:
        """The process turning changes into records: the Connect worker or nerve cdc."""
        if self.worker is not None:
            assert self.worker.proc is not None
            return self.worker.proc.pid
        assert self.proc is not None
        return self.proc.pid

    def start(self, table: str) -> str:
        if self.worker is not None:
            self.name = connector(self.pg, self.worker, table)
        else:
            self.name = f"bench{uuid.uuid4().hex[:8]}"
            env = dict(os.environ)
            if self.source is not None:
                env["PYTHONPATH"] = str(self.source)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nerve", "cdc", "postgres", self.pg.dsn,
                 "--prefix", self.name, "--table", f"public.{table}", "-b", self.bootstrap,
                 *self.options],
                env=env,
            )  # fmt: skip
        return f"{self.name}.public.{table}"

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.request("DELETE", f"/connectors/{self.name}")
            slot = f"{self.name}_slot"
        else:
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(30)
            slot = f"nerve_cdc_{self.name}"
        time.sleep(2)
        self.pg.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s AND NOT active",
            (slot,),
        )


def measure(pg: PostgresProcess, pipeline: Pipeline, args: Any) -> dict[str, Any]:
    import psycopg

    result: dict[str, Any] = {}
    for case in ("throughput", "latency"):
        table = f"bench_{case}_{uuid.uuid4().hex[:6]}"
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, payload text NOT NULL)")
        topic = pipeline.start(table)
        arrivals = Arrivals(pipeline.bootstrap, topic)
        # The slot exists once the pipeline runs; one warm-up change also creates the topic.
        pg.execute(f"INSERT INTO {table} VALUES (0, 'warm-up')")
        arrivals.wait(1, 180)
        payload = "x" * 100
        with psycopg.connect(pg.dsn) as conn:
            if case == "throughput":
                cpu = (cpu_s(pipeline.broker_pid), cpu_s(pipeline.pid()))
                started = time.time()
                for start in range(1, args.changes + 1, args.batch):
                    ids = range(start, min(start + args.batch, args.changes + 1))
                    # COPY, not INSERTs one by one: the writer must outrun the pipeline
                    # (executemany of single-row INSERTs managed ~3,400 rows/s here).
                    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                        for i in ids:
                            copy.write_row((i, payload))
                    conn.commit()
                # What the writer itself managed: the ceiling of changes/s.
                result["written_per_s"] = args.changes / (time.time() - started)
                last = arrivals.wait(args.changes + 1, 600)
                result["changes_per_s"] = args.changes / (last - started)
                per = 10_000 / args.changes
                result["broker_cpu_s"] = (cpu_s(pipeline.broker_pid) - cpu[0]) * per
                result["pipeline_cpu_s"] = (cpu_s(pipeline.pid()) - cpu[1]) * per
            else:
                committed: dict[int, float] = {}
                interval = 1 / args.rate
                next_at = time.monotonic()
                for i in range(1, args.latency_changes + 1):
                    conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, payload))
                    conn.commit()
                    committed[i] = time.time()
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                arrivals.wait(args.latency_changes + 1, 120)
                latencies = sorted((arrivals.seen[i] - committed[i]) * 1000 for i in committed)
                result["p50_ms"] = statistics.median(latencies)
                result["p99_ms"] = latencies[int(len(latencies) * 0.99) - 1]
        arrivals.close()
        pipeline.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000, help="inserts, throughput case")
    parser.add_argument("--batch", type=int, default=100, help="rows per transaction")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run nerve cdc postgres as of this git revision (before/after in one run)",
    )
    parser.add_argument("--rate", type=float, default=50, help="transactions/s, latency case")
    parser.add_argument("--latency-changes", type=int, default=500)
    labels = ("nerve", "kafka", "nerve cdc unbatched", "nerve cdc baseline", "nerve cdc")
    parser.add_argument(
        "--only", choices=labels, action="append", help="these pipelines only (repeatable)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="every pipeline N times")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args()
    baseline: Path | None = None
    if args.baseline:
        baseline = Path(tempfile.mkdtemp(prefix="nerve-bench-cdc-baseline-"))
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline, "src"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        baseline = baseline / "src"

    plugins = debezium_plugins()
    # Commits wait for the WAL flush: logical decoding reads only flushed WAL, so with the
    # rig's asynchronous commit every pipeline would wait for the WAL writer (up to 600 ms).
    pg = PostgresProcess(settings={"synchronous_commit": "on"}).start()
    root = Path(tempfile.mkdtemp(prefix="nerve-bench-cdc-"))
    rows: dict[str, dict[str, Any]] = {}
    runs = [(n, label) for n in range(1, args.rounds + 1) for label in labels]
    try:
        for n, label in runs:
            if args.only and label not in args.only:
                continue
            if label == "nerve cdc baseline" and baseline is None:
                continue
            broker: BrokerProcess | KafkaProcess
            if label == "kafka":
                broker = KafkaProcess(root / "kafka" / "data")
            else:
                broker = BrokerProcess(root / label.replace(" ", "-") / "data")
            broker.start()
            worker = None
            if not label.startswith("nerve cdc"):
                worker = ConnectWorker(
                    root / f"connect-{label}", broker.bootstrap, plugin_path=plugins
                ).start()
            try:
                options = ("--batch-changes", "0") if label == "nerve cdc unbatched" else ()
                source = baseline if label == "nerve cdc baseline" else None
                pipeline = Pipeline(pg, broker.bootstrap, worker, options, source)
                pipeline.broker_pid = broker.pid
                key = label if args.rounds == 1 else f"{label} #{n}"
                rows[key] = {"label": label, "load": os.getloadavg()[0],
                             **measure(pg, pipeline, args)}  # fmt: skip
            finally:
                if worker is not None:
                    worker.close()
                broker.close()
            print(key, rows[key], flush=True)
    finally:
        pg.close()
    lines = [
        "| PostgreSQL changes into Kafka | changes/s | commit-to-event p50 ms | p99 ms"
        " | broker CPU s / 10k changes | Connect (or nerve cdc) CPU s / 10k"
        " | rows committed/s (the writer) | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "nerve": "Debezium on Connect 4.4 on nerve",
        "kafka": "Debezium on Connect 4.4 on Apache Kafka 4.4",
        "nerve cdc unbatched": "nerve cdc postgres on nerve, --batch-changes 0",
        "nerve cdc baseline": f"nerve cdc postgres as of {args.baseline} on nerve",
        "nerve cdc": "nerve cdc postgres on nerve",
    }
    for key, row in rows.items():
        lines.append(
            f"| {names[row['label']]}{key[len(row['label']) :]} | {row['changes_per_s']:,.0f} | "
            f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['broker_cpu_s']:.2f} | "
            f"{row['pipeline_cpu_s']:.2f} | {row['written_per_s']:,.0f} | {row['load']:.1f} |"
        )
    # Ratios of the medians over the rounds.
    figures = ("changes_per_s", "p50_ms", "p99_ms", "broker_cpu_s", "pipeline_cpu_s")
    median: dict[str, dict[str, float]] = {}
    for label in labels:
        mine = [row for row in rows.values() if row["label"] == label]
        if mine:
            median[label] = {f: statistics.median(r[f] for r in mine) for f in figures}

    def ratio(over: str, under: str, name: str) -> None:
        a, b = median.get(over), median.get(under)
        if a is not None and b is not None:
            lines.append(f"| {name} | " + " | ".join(f"{a[f] / b[f]:.2f}" for f in figures)
                         + " | | |")  # fmt: skip

    ratio("nerve", "kafka", "Debezium on nerve / on Kafka")
    ratio("nerve cdc unbatched", "kafka", "nerve cdc --batch-changes 0 / Debezium on Kafka")
    ratio("nerve cdc", "kafka", "nerve cdc / Debezium on Kafka")
    ratio("nerve cdc", "nerve cdc unbatched", "nerve cdc / nerve cdc --batch-changes 0")
    ratio("nerve cdc", "nerve cdc baseline", f"nerve cdc / nerve cdc as of {args.baseline}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(
            f"# bench/cdc.py, {time.strftime('%Y-%m-%d')}\n\n"
            f"{args.changes:,} inserts in transactions of {args.batch}; "
            f"{args.latency_changes} single-row transactions at {args.rate:g}/s.\n\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
