"""Kafka's own command-line tools (the main classes of kafka-tools 4.4, as kafka-transactions.sh,
kafka-log-dirs.sh, kafka-acls.sh, kafka-reassign-partitions.sh, ... run them) against nerve and
against Apache Kafka: each must print the same. They are the admin clients that call the APIs
nerve answers for tools:
DescribeProducers, WriteTxnMarkers, ListTransactions, DescribeLogDirs, the ACL APIs, ElectLeaders,
partition reassignments, client quotas, SCRAM credentials, client-metrics and group configs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests._ck import Out, produce_ok, watermarks
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tools_home() -> Path:
    if shutil.which("java") is None:
        pytest.fail("java is not installed; .ci/run installs it")
    out = subprocess.run(
        [str(REPO / "scripts" / "kafka"), "tools"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


Tool = Callable[..., tuple[int, str]]


@pytest.fixture
def tool(tools_home: Path, backend: Backend) -> Tool:
    """``tool("TransactionsCommand", "list")`` -> (exit code, stdout and stderr)."""

    def run(main: str, *args: str) -> tuple[int, str]:
        result = subprocess.run(
            ["java", f"-Dlog4j2.configurationFile={tools_home / 'log4j2.properties'}",
             "-cp", f"{tools_home / 'libs'}/*", f"org.apache.kafka.tools.{main}",
             "--bootstrap-server", backend.bootstrap, *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    return run


def rows(text: str) -> list[list[str]]:
    """The tab-separated table a tool prints (cells trimmed, the trailing empty one dropped)."""
    out = []
    for line in text.strip().splitlines():
        cells = [cell.strip() for cell in line.split("\t")]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            out.append(cells)
    return out


def test_kafka_transactions_describe_producers_and_abort_a_hanging_transaction(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    producer = Producer({"bootstrap.servers": backend.bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"left open")
    producer.flush(30)

    code, out = tool("TransactionsCommand", "describe-producers", "--topic", topic,
                     "--partition", "0")  # fmt: skip
    assert code == 0, out
    header, *producers = rows(out)
    assert header == ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence",
                      "LastTimestamp", "CurrentTransactionStartOffset"]  # fmt: skip
    assert len(producers) == 1
    _, epoch, _, last_sequence, _, start_offset = producers[0]
    assert (epoch, last_sequence, start_offset) == ("0", "0", "0")

    code, out = tool("TransactionsCommand", "list")
    assert code == 0, out
    listed = {r[0]: r for r in rows(out)[1:]}
    # TransactionalId, Coordinator, ProducerId, TransactionState
    assert (listed[topic][1], listed[topic][3]) == ("1", "Ongoing")

    code, out = tool("TransactionsCommand", "find-hanging", "--broker-id", "1")
    assert code == 0, out
    assert topic not in out  # open for seconds, not past the transaction timeout

    # An operator ends the transaction with a marker written straight to the partition.
    code, out = tool("TransactionsCommand", "abort", "--topic", topic, "--partition", "0",
                     "--start-offset", "0")  # fmt: skip
    assert code == 0, out
    code, out = tool("TransactionsCommand", "describe-producers", "--topic", topic,
                     "--partition", "0")  # fmt: skip
    assert rows(out)[1][5] == "None"  # no transaction open any more
    assert watermarks(backend.bootstrap, topic) == (0, 2)  # the record and the abort marker


def test_kafka_transactions_describe_shows_no_partitions_once_complete(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    producer = Producer({"bootstrap.servers": backend.bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)

    deadline = time.monotonic() + 30
    while True:
        code, out = tool("TransactionsCommand", "describe", "--transactional-id", topic)
        assert code == 0, out
        header, described = rows(out)
        fields = dict(zip(header, described, strict=False))
        if fields["TransactionState"] == "CompleteCommit" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fields["TransactionState"] == "CompleteCommit"
    assert fields.get("TopicPartitions", "") == ""


def test_kafka_log_dirs(backend: Backend, tool: Tool, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic, 2)
    produce_ok(backend.bootstrap, topic, [Out(b"x" * 100, partition=1)], compression_type="none")
    code, out = tool("LogDirsCommand", "--describe", "--topic-list", topic)
    assert code == 0, out
    described = json.loads(out.strip().splitlines()[-1])
    (broker,) = described["brokers"]
    (log_dir,) = broker["logDirs"]
    assert (broker["broker"], log_dir["error"]) == (1, None)
    sizes = {p["partition"]: p["size"] for p in log_dir["partitions"]}
    assert sizes == {f"{topic}-0": 0, f"{topic}-1": 170}  # one batch of one 100-byte record
    assert all(p["offsetLag"] == 0 and not p["isFuture"] for p in log_dir["partitions"])


def test_kafka_acls_says_security_is_disabled(backend: Backend, tool: Tool) -> None:
    code, out = tool("AclCommand", "--list")
    assert code == 1
    assert out.splitlines()[0] == (
        "Error while executing ACL command: org.apache.kafka.common.errors."
        "SecurityDisabledException: No Authorizer is configured on the broker"
    )
    code, out = tool("AclCommand", "--add", "--allow-principal", "User:alice", "--operation",
                     "Read", "--topic", "t")  # fmt: skip
    assert code == 1
    assert "SecurityDisabledException: No Authorizer is configured" in out


def test_kafka_leader_election_and_reassignments(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    code, out = tool("LeaderElectionCommand", "--election-type", "preferred", "--topic", topic,
                     "--partition", "0")  # fmt: skip
    assert (code, out.strip()) == (0, f"Valid replica already elected for partitions {topic}-0")
    code, out = tool("reassign.ReassignPartitionsCommand", "--list")
    assert (code, out.strip()) == (0, "No partition reassignments found.")


def test_kafka_reassign_partitions_execute_and_verify(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory, tmp_path: Path
) -> None:
    """A plan onto the only broker: AlterPartitionReassignments, then --verify, which also
    clears the throttles a reassignment may have set (IncrementalAlterConfigs deleting the
    brokers' *.replication.throttled.rate and the topic's throttled replicas)."""
    topic = topic_name()
    create(backend, topic, 2)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": [1]} for p in (0, 1)
    ]}))  # fmt: skip
    code, out = tool("reassign.ReassignPartitionsCommand", "--execute",
                     "--reassignment-json-file", str(plan))  # fmt: skip
    assert code == 0, out
    heading, current, save, started = [line for line in out.strip().splitlines() if line]
    assert (heading, save) == (
        "Current partition replica assignment",
        "Save this to use as the --reassignment-json-file option during rollback",
    )
    assert [(p["topic"], p["partition"], p["replicas"], len(p["log_dirs"]))
            for p in json.loads(current)["partitions"]] == [
        (topic, 0, [1], 1), (topic, 1, [1], 1)
    ]  # fmt: skip
    assert started == f"Successfully started partition reassignments for {topic}-0,{topic}-1"
    code, out = tool("reassign.ReassignPartitionsCommand", "--verify",
                     "--reassignment-json-file", str(plan))  # fmt: skip
    assert code == 0, out
    assert [line for line in out.strip().splitlines() if line] == [
        "Status of partition reassignment:",
        f"Reassignment of partition {topic}-0 is completed.",
        f"Reassignment of partition {topic}-1 is completed.",
        "Clearing broker-level throttles on broker 1",
        f"Clearing topic-level throttles on topic {topic}",
    ]
    code, out = tool("reassign.ReassignPartitionsCommand", "--list")
    assert (code, out.strip()) == (0, "No partition reassignments found.")


def test_kafka_configs_client_quotas_scram_and_group_configs(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    user, group = topic_name("user"), topic_name("group")
    code, out = tool("ConfigCommand", "--alter", "--entity-type", "users", "--entity-name", user,
                     "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048")  # fmt: skip
    assert code == 0, out
    deadline = time.monotonic() + 30
    while True:
        code, out = tool("ConfigCommand", "--describe", "--entity-type", "users",
                         "--entity-name", user)  # fmt: skip
        if "byte_rate" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == 0, out
    assert out.strip().splitlines() == [
        f"Quota configs for user-principal '{user}' are consumer_byte_rate=2048.0, "
        "producer_byte_rate=1024.0",
    ]
    code, out = tool("ConfigCommand", "--alter", "--entity-type", "groups", "--entity-name",
                     group, "--add-config", "consumer.session.timeout.ms=50000")  # fmt: skip
    assert code == 0, out
    deadline = time.monotonic() + 30
    while True:
        code, out = tool("ConfigCommand", "--describe", "--entity-type", "groups",
                         "--entity-name", group)  # fmt: skip
        if "50000" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert out.strip().splitlines() == [
        f"Dynamic configs for group {group} are:",
        "  consumer.session.timeout.ms=50000 sensitive=false "
        "synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000, "
        "DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}",
    ]


def test_kafka_client_metrics_subscriptions(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    name = topic_name("metrics")
    code, out = tool("ClientMetricsCommand", "--alter", "--name", name, "--metrics",
                     "org.apache.kafka.producer.", "--interval", "1000")  # fmt: skip
    assert code == 0, out
    deadline = time.monotonic() + 30
    while True:
        code, out = tool("ClientMetricsCommand", "--list")
        if name in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert code == 0, out
    assert name in out.split()
    code, out = tool("ClientMetricsCommand", "--describe", "--name", name)
    assert code == 0, out
    assert re.sub(r"\s+", " ", out).strip() == (
        f"Client metrics configs for {name} are: interval.ms=1000 match= "
        "metrics=org.apache.kafka.producer."
    )


def test_kafka_topics_describe(backend: Backend, tool: Tool, topic_name: TopicNameFactory) -> None:
    """kafka-topics --describe pages partitions with DescribeTopicPartitions."""
    topic = topic_name()
    create(backend, topic, 2, **{"retention.ms": "60000"})
    code, out = tool("TopicCommand", "--describe", "--topic", topic)
    assert code == 0, out
    lines = [re.sub(r"TopicId: \S+", "TopicId: ID", line) for line in out.strip().splitlines()]
    assert [rows(line)[0] for line in lines] == [
        [f"Topic: {topic}", "TopicId: ID", "PartitionCount: 2", "ReplicationFactor: 1",
         "Configs: min.insync.replicas=1,retention.ms=60000"],
        [f"Topic: {topic}", "Partition: 0", "Leader: 1", "Replicas: 1", "Isr: 1",
         "Elr:", "LastKnownElr:"],
        [f"Topic: {topic}", "Partition: 1", "Leader: 1", "Replicas: 1", "Isr: 1",
         "Elr:", "LastKnownElr:"],
    ]  # fmt: skip


def test_kafka_share_groups_describe_reset_and_delete_offsets(
    backend: Backend, tool: Tool, topic_name: TopicNameFactory
) -> None:
    """kafka-share-groups.sh (ShareGroupCommand): --describe --offsets, --reset-offsets
    (dry run and --execute), --delete-offsets and --delete of a share group."""
    from confluent_kafka import ShareConsumer

    from tests.differential.test_share_groups import earliest

    topic, group = topic_name(), topic_name("share")
    create(backend, topic, partitions=2)
    earliest(backend, group)
    produce_ok(
        backend.bootstrap, topic, [Out(f"v{i}".encode(), partition=i % 2) for i in range(10)]
    )
    member = ShareConsumer({"bootstrap.servers": backend.bootstrap, "group.id": group})
    try:
        member.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 10 and time.monotonic() < deadline:
            seen += sum(1 for m in member.poll(0.5) if m.error() is None)
        member.commit_sync()
    finally:
        member.close()
    assert seen == 10
    command = "consumer.group.ShareGroupCommand"
    got = {}
    got["describe"] = tool(command, "--describe", "--offsets", "--group", group)
    got["dry run"] = tool(command, "--reset-offsets", "--group", group, "--topic", topic,
                          "--to-earliest", "--dry-run")  # fmt: skip
    got["execute"] = tool(command, "--reset-offsets", "--group", group, "--topic", f"{topic}:1",
                          "--to-offset", "2", "--execute")  # fmt: skip
    got["after reset"] = tool(command, "--describe", "--offsets", "--group", group)
    got["delete offsets"] = tool(command, "--delete-offsets", "--group", group, "--topic", topic)
    got["after delete"] = tool(command, "--describe", "--offsets", "--group", group)
    got["delete"] = tool(command, "--delete", "--group", group)
    got["list"] = tool(command, "--list")
    assert {k: code for k, (code, _) in got.items()} == dict.fromkeys(got, 0), got
    tables = {k: rows(out.replace(group, "G").replace(topic, "T")) for k, (_, out) in got.items()}

    def columns(table: list[list[str]]) -> list[list[str]]:
        return [line[0].split() for line in table]

    # Everything accepted: no lag. (Kafka's START-OFFSET stays 0 until its share coordinator
    # folds the acknowledged records in, nerve's is past them: compared without it.)
    described = columns(tables["describe"])
    assert described[0] == ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"]
    assert [(r[:3], r[4]) for r in described[1:]] == [
        (["G", "T", "0"], "0"),
        (["G", "T", "1"], "0"),
    ]
    dry_run = columns(tables["dry run"])
    assert dry_run[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
    assert sorted(dry_run[1:]) == [["G", "T", "0", "0"], ["G", "T", "1", "0"]]
    assert columns(tables["execute"])[1:] == [["G", "T", "1", "2"]]
    after = columns(tables["after reset"])
    # Records 2-4 of partition 1 to do again.
    assert sorted(after[1:])[1] == ["G", "T", "1", "2", "3"]
    assert columns(tables["delete offsets"])[1:] == [["T", "Successful"]]
    assert tables["after delete"] == [["Share group 'G' has no offset information."]]
    assert tables["delete"] == [["Deletion of requested share groups ('G') was successful."]]
    assert group not in got["list"][1].split()
