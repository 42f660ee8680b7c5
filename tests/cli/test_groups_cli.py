"""``nerve groups`` run as a real command against a real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer

from tests._broker import BrokerProcess
from tests._ck import Out, create_topic, produce_ok
from tests.conftest import Backend, TopicNameFactory


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        tmp_path_factory.mktemp("cli") / "data",
        configs={"group.initial.rebalance.delay.ms": 0},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def nerve(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args, "-b", bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )


def consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "cli-test",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            got += 1
            consumer.commit(message=message, asynchronous=False)
    assert got == count
    return consumer


def test_list_describe_reset_and_delete_a_group(
    cli_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = cli_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=1)
    start = int(time.time() * 1000)
    produce_ok(
        bootstrap, topic, [Out(f"v{i}".encode(), timestamp=start + i * 1000) for i in range(10)]
    )
    consumer = consume_and_commit(bootstrap, topic, group, 4)
    try:
        listed = nerve("groups", "list", "--json", bootstrap=bootstrap)
        assert listed.returncode == 0, listed.stderr
        assert {"group": group, "state": "stable", "kind": "consumer"} in json.loads(listed.stdout)

        described = nerve("groups", "describe", group, bootstrap=bootstrap)
        assert described.returncode == 0, described.stderr
        assert f"group {group}: stable, 1 member(s), assignor range" in described.stdout
        row = next(line.split() for line in described.stdout.splitlines() if line.startswith(topic))
        assert row[:5] == [topic, "0", "4", "10", "6"]  # committed 4 of 10: lag 6
        assert row[-1] == "cli-test"

        refused = nerve("groups", "reset-offsets", group, "--topic", topic, "--to-earliest",
                        bootstrap=bootstrap)  # fmt: skip
        assert refused.returncode == 1
        assert "active member" in refused.stderr
    finally:
        consumer.close()

    def committed() -> int:
        out = nerve("groups", "describe", group, "--json", bootstrap=bootstrap)
        return json.loads(out.stdout)["partitions"][0]["current_offset"]

    def reset(*how: str) -> subprocess.CompletedProcess[str]:
        return nerve("groups", "reset-offsets", group, "--topic", topic, *how, bootstrap=bootstrap)

    assert reset("--to-earliest").returncode == 0
    assert committed() == 0
    assert reset("--to-latest").returncode == 0
    assert committed() == 10
    assert reset("--to-offset", "7").returncode == 0
    assert committed() == 7
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((start + 5000) / 1000))
    preview = reset("--to-datetime", moment, "--dry-run")
    assert preview.returncode == 0 and "dry run" in preview.stdout
    assert committed() == 7
    assert reset("--to-datetime", moment).returncode == 0
    assert committed() == 5

    deleted = nerve("groups", "delete", group, bootstrap=bootstrap)
    assert deleted.returncode == 0, deleted.stderr
    listed = nerve("groups", "list", "--json", bootstrap=bootstrap)
    assert group not in [g["group"] for g in json.loads(listed.stdout)]
    missing = nerve("groups", "delete", group, bootstrap=bootstrap)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_unreachable_broker_is_one_clear_line_and_exit_1() -> None:
    result = nerve("groups", "list", bootstrap="127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("nerve groups: cannot reach a broker at 127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_describing_an_unknown_group_says_so_and_exits_1(backend: Backend) -> None:
    # Kafka 4 answers GROUP_ID_NOT_FOUND, older brokers a Dead group: the same to the user.
    done = nerve("groups", "describe", "no-such-group-anywhere", bootstrap=backend.bootstrap)
    assert done.returncode == 1, (backend.name, done.stdout)
    assert done.stderr.strip() == "nerve groups: unknown group no-such-group-anywhere"


def test_reset_offsets_accepts_execute_as_kafka_tool_does(
    cli_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), f"g-{topic_name()}"
    create_topic(cli_broker.bootstrap, topic)
    produce_ok(cli_broker.bootstrap, topic, [b"a", b"b", b"c"])
    consume_and_commit(cli_broker.bootstrap, topic, group, 3).close()
    done = nerve(
        "groups", "reset-offsets", group, "--topic", topic, "--to-offset", "1", "--execute",
        bootstrap=cli_broker.bootstrap,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    described = json.loads(
        nerve("groups", "describe", group, "--json", bootstrap=cli_broker.bootstrap).stdout
    )
    assert [p["current_offset"] for p in described["partitions"]] == [1]
    both = nerve(
        "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
        "--dry-run", bootstrap=cli_broker.bootstrap,
    )  # fmt: skip
    assert both.returncode == 2 and "not allowed with" in both.stderr
