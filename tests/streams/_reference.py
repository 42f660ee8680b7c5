"""The differential rig for streams: feed a scenario's input (tests/streams/scenarios.py) to a
streams application on a broker, wait until it has processed all of it, and read its output.

The application is anything with the ``StreamsApp`` shape; ``KafkaStreamsApp`` is the
reference, the Kafka Streams program in tests/streams/reference (built once with Maven and
cached under ~/.cache/nerve by a hash of its sources). A nerve streams application run the
same way must write the same output per key (``by_key``): order across partitions is not
defined, order within a key is.

    python -m tests.streams._reference record    # rewrite kafka_streams_4_4_outputs.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.streams.scenarios import PARTITIONS, SCENARIOS, Scenario

HERE = Path(__file__).parent
SOURCES = HERE / "reference"
RECORDED = HERE / "kafka_streams_4_4_outputs.json"
MAIN_CLASS = "dev.nerve.streams.reference.ReferenceApp"
QUIET_TIMEOUT_S = 120.0
POLL_S = 0.1


@dataclass(frozen=True)
class Output:
    """One record of an output topic."""

    partition: int
    offset: int
    key: str | None
    value: str | None
    timestamp: int


PerKey = dict[str, list[tuple[str | None, int]]]


def by_key(records: Iterable[Output]) -> PerKey:
    """Each key's (value, timestamp) in output order: what two runs must agree on."""
    grouped: PerKey = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        grouped.setdefault(str(record.key), []).append((record.value, record.timestamp))
    return grouped


# -- building the reference ------------------------------------------------------------------


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in SOURCES.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def reference_classpath() -> str:
    """The Java classpath of the reference application, built on first use (needs mvn)."""
    cache_root = Path(os.environ.get("NERVE_CACHE", Path.home() / ".cache" / "nerve"))
    cache = cache_root / f"streams-reference-{_sources_digest()}"
    if not (cache / ".complete").exists():
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed; .ci/run installs it")
        cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="streams-reference-", dir=cache_root))
        try:
            build = staging / "build"
            shutil.copytree(SOURCES, build, ignore=shutil.ignore_patterns("target"))
            result = subprocess.run(
                ["mvn", "-q", "-B", "package", "dependency:copy-dependencies",
                 "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'libs'}"],
                cwd=build, capture_output=True, text=True,
            )  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"building {SOURCES} failed:\n{result.stdout[-4000:]}")
            (jar,) = (build / "target").glob("streams-reference-*.jar")
            shutil.copy(jar, staging / "reference.jar")
            shutil.rmtree(build)
            (staging / ".complete").touch()
            try:
                staging.rename(cache)
            except OSError:  # another session built it meanwhile
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            if staging.exists() and not (cache / ".complete").exists():
                shutil.rmtree(staging, ignore_errors=True)
    return f"{cache / 'reference.jar'}:{cache / 'libs'}/*"


# -- applications under test -----------------------------------------------------------------


class StreamsApp(Protocol):
    """A streams application, seen from the rig. ``start`` may follow ``stop`` (a restart)."""

    @property
    def group_ids(self) -> Sequence[str]:
        """Its consumer groups: the rig waits until they have committed all they were given."""
        ...

    def start(self) -> None: ...

    def check(self) -> None:
        """Raise (with what it logged) if the application has died or failed."""
        ...

    def stop(self) -> None: ...


class KafkaStreamsApp:
    """The reference application: one JVM running the given scenarios side by side. Each
    start gets an empty state directory, so a restart restores its stores from Kafka."""

    def __init__(
        self,
        scenarios: Sequence[str],
        bootstrap: str,
        *,
        workdir: Path,
        application_id: str | None = None,
        exactly_once: bool = False,
        topic_prefix: str = "",
        classpath: str | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.bootstrap = bootstrap
        self.application_id = application_id or f"reference-{uuid.uuid4().hex[:8]}"
        self.exactly_once = exactly_once
        self.topic_prefix = topic_prefix
        self.classpath = classpath or reference_classpath()
        self.workdir = workdir
        self.log_path = workdir / f"{self.application_id}.log"
        self.lines: list[str] = []
        self.starts = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def group_ids(self) -> list[str]:
        if len(self.scenarios) == 1:
            return [self.application_id]
        return [f"{self.application_id}-{name}" for name in self.scenarios]

    def start(self) -> None:
        self.starts += 1
        self.lines = []
        state_dir = self.workdir / f"{self.application_id}-state-{self.starts}"
        argv = [
            "java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", self.classpath, MAIN_CLASS,
            ",".join(self.scenarios), self.bootstrap, self.application_id,
            "--state-dir", str(state_dir),
        ]  # fmt: skip
        if self.exactly_once:
            argv.append("--eos")
        if self.topic_prefix:
            argv += ["--topic-prefix", self.topic_prefix]
        log = open(self.log_path, "a")  # noqa: SIM115 - the child writes to it until stop()
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        log.close()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """The lines Kafka Streams logged at WARN or ERROR."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " WARN " in line or " ERROR " in line]

    def check(self) -> None:
        assert self._proc is not None
        failed = [line for line in self.lines if line.startswith("failed ")]
        if failed or self._proc.poll() is not None:
            raise RuntimeError(
                f"Kafka Streams stopped (exit {self._proc.poll()}, {failed}):\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()  # the application's cue to close cleanly
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
            raise RuntimeError(f"Kafka Streams did not stop in 60 s:\n{self.log_tail()}") from None
        if self._proc.returncode != 0:
            raise RuntimeError(f"Kafka Streams exited {self._proc.returncode}:\n{self.log_tail()}")


# -- the rig ---------------------------------------------------------------------------------


def create_topics(bootstrap: str, scenarios: Iterable[Scenario], prefix: str = "") -> None:
    """Every input and output topic, with unlimited retention: the scenarios' timestamps are
    years old, and time-based retention would delete their records while they are read."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [s.topic(suffix, prefix) for s in scenarios for suffix in (*s.inputs, "out")]
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=PARTITIONS, replication_factor=1, config={"retention.ms": "-1"}
            )
            for name in names
        ],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result(30)


def produce_phase(
    bootstrap: str, scenarios: Iterable[Scenario], phase: int, prefix: str = ""
) -> None:
    """Phase ``phase`` of each scenario that has one, topic by topic in order of appearance,
    with the records' own timestamps and the Java client's partitioner."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for scenario in scenarios:
        if phase >= len(scenario.phases):
            continue
        for record in scenario.phases[phase]:
            producer.produce(
                scenario.topic(record.topic, prefix),
                key=record.key.encode(),
                value=None if record.value is None else record.value.encode(),
                timestamp=record.timestamp,
                on_delivery=delivered,
            )
    remaining = producer.flush(30)
    if remaining or failures:
        raise RuntimeError(f"producing phase {phase + 1}: {remaining} undelivered, {failures}")


# A group not created yet, or a coordinator still loading: ask again.
_NOT_YET = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.GROUP_ID_NOT_FOUND,
}


def _caught_up(admin: AdminClient, consumer: Consumer, group: str) -> bool:
    """The group is stable and has committed the end of every partition it is assigned."""
    (description,) = admin.describe_consumer_groups([group]).values()
    try:
        group_info = description.result(10)
    except KafkaException as e:
        if e.args[0].code() in _NOT_YET:
            return False
        raise
    if group_info.state != ConsumerGroupState.STABLE or not group_info.members:
        return False
    assigned = [
        TopicPartition(tp.topic, tp.partition)
        for member in group_info.members
        for tp in member.assignment.topic_partitions
    ]
    if not assigned:
        return False
    (offsets,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    committed = {(tp.topic, tp.partition): tp.offset for tp in offsets.result(10).topic_partitions}
    for tp in assigned:
        _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        if high > 0 and committed.get((tp.topic, tp.partition), -1) < high:
            return False
    return True


def wait_until_processed(bootstrap: str, app: StreamsApp, timeout: float = QUIET_TIMEOUT_S) -> None:
    """Until every group of ``app`` has committed to the end of its input, twice in a row."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "streams-rig-watermarks"})
    try:
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < 2:
            app.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{list(app.group_ids)} did not catch up in {timeout} s")
            if all(_caught_up(admin, consumer, group) for group in app.group_ids):
                streak += 1
            else:
                streak = 0
            time.sleep(POLL_S)
    finally:
        consumer.close()


def read_outputs(
    bootstrap: str, topics: Sequence[str], timeout: float = 30.0
) -> dict[str, list[Output]]:
    """Every committed record of each topic, by partition, in offset order (one consumer)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"streams-rig-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(PARTITIONS)]
        )
        records: dict[str, list[Output]] = {topic: [] for topic in topics}
        at_end: set[tuple[str, int]] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(topics) * PARTITIONS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"outputs not read to their end in {timeout} s")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            topic, partition = msg.topic() or "", msg.partition() or 0
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add((topic, partition))
                    continue
                raise RuntimeError(f"reading {topic}: {err}")
            key, value = msg.key(), msg.value()
            records[topic].append(
                Output(
                    partition=partition,
                    offset=msg.offset() or 0,
                    key=None if key is None else key.decode(),
                    value=None if value is None else value.decode(),
                    timestamp=msg.timestamp()[1],
                )
            )
        return {t: sorted(rs, key=lambda r: (r.partition, r.offset)) for t, rs in records.items()}
    finally:
        consumer.close()


def run_scenarios(
    bootstrap: str,
    scenarios: Sequence[Scenario],
    app: StreamsApp,
    *,
    prefix: str = "",
    restart_after_phase: int | None = None,
) -> dict[str, list[Output]]:
    """Create the topics, produce phase 1, start ``app``, then feed the later phases one at a
    time, each once the previous one is processed; stop ``app`` and return each output.

    With ``restart_after_phase`` n, the application is stopped and started again once phase n
    (counting from 1) is processed: the output must not change.
    """
    create_topics(bootstrap, scenarios, prefix)
    produce_phase(bootstrap, scenarios, 0, prefix)
    app.start()
    try:
        wait_until_processed(bootstrap, app)
        for phase in range(1, max(len(s.phases) for s in scenarios)):
            if phase == restart_after_phase:
                app.stop()
                app.start()
                wait_until_processed(bootstrap, app)
            produce_phase(bootstrap, scenarios, phase, prefix)
            wait_until_processed(bootstrap, app)
    finally:
        app.stop()
    outputs = read_outputs(bootstrap, [s.topic("out", prefix) for s in scenarios])
    return {s.name: outputs[s.topic("out", prefix)] for s in scenarios}


def run_reference(
    bootstrap: str,
    names: Sequence[str],
    workdir: Path,
    *,
    exactly_once: bool = False,
    restart_after_phase: int | None = None,
    classpath: str | None = None,
) -> tuple[dict[str, list[Output]], KafkaStreamsApp]:
    """Run Kafka Streams over the named scenarios under fresh topic names."""
    prefix = f"ks-{uuid.uuid4().hex[:6]}-"
    app = KafkaStreamsApp(
        names,
        bootstrap,
        workdir=workdir,
        exactly_once=exactly_once,
        topic_prefix=prefix,
        classpath=classpath,
    )
    outputs = run_scenarios(
        bootstrap,
        [SCENARIOS[n] for n in names],
        app,
        prefix=prefix,
        restart_after_phase=restart_after_phase,
    )
    return outputs, app


def load_recorded() -> dict[str, PerKey]:
    """kafka_streams_4_4_outputs.json: scenario -> key -> [(value, timestamp), ...]."""
    raw = json.loads(RECORDED.read_text())
    return {
        name: {key: [(value, ts) for value, ts in rows] for key, rows in per_key.items()}
        for name, per_key in raw["outputs"].items()
    }


def _record() -> None:
    """Run every scenario on a fresh Apache Kafka twice; write the outputs if both agree."""
    from tests._kafka import KafkaProcess

    with tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaProcess(Path(tmp) / "kafka", configs={"group.initial.rebalance.delay.ms": 0})
        kafka.start()
        try:
            classpath = reference_classpath()
            runs = [
                run_reference(kafka.bootstrap, list(SCENARIOS), Path(tmp), classpath=classpath)[0]
                for _ in range(2)
            ]
        finally:
            kafka.close()
    first, second = ({n: by_key(out) for n, out in run.items()} for run in runs)
    differing = [name for name in SCENARIOS if first[name] != second[name]]
    if differing:
        sys.exit(f"two runs differ in {differing}: not deterministic, nothing written")
    RECORDED.write_text(_recorded_json(first))
    print(f"wrote {RECORDED}")


def _recorded_json(outputs: dict[str, PerKey]) -> str:
    """JSON with one line per output key, keys sorted, so that a change reads as a small diff."""
    about = (
        "What Kafka Streams 4.4 writes for each scenario of tests/streams/scenarios.py, per "
        "output key, as [value, timestamp] in output order (python -m tests.streams._reference "
        "record)."
    )
    scenarios = []
    for name in sorted(outputs):
        per_key = outputs[name]
        rows = [f"   {json.dumps(key)}: {json.dumps(per_key[key])}" for key in sorted(per_key)]
        scenarios.append(f"  {json.dumps(name)}: {{\n" + ",\n".join(rows) + "\n  }")
    return (
        f'{{\n "about": {json.dumps(about)},\n "outputs": {{\n'
        + ",\n".join(scenarios)
        + "\n }\n}\n"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m tests.streams._reference record")
    _record()
