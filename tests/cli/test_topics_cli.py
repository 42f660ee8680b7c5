"""``nerve topics``, ``nerve produce`` and ``nerve consume`` as real commands."""

from __future__ import annotations

import json
import subprocess
import sys

from tests._broker import BrokerProcess
from tests.conftest import TopicNameFactory


def nerve(
    *args: str, bootstrap: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args, "-b", bootstrap],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_create_list_describe_delete(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    created = nerve("topics", "create", topic, "-p", "3", "-c", "retention.ms=60000",
                    bootstrap=bootstrap)  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = json.loads(nerve("topics", "list", "--json", bootstrap=bootstrap).stdout)
    assert {"topic": topic, "partitions": 3} in listed
    assert not any(t["topic"].startswith("__") for t in listed)
    with_internal = json.loads(
        nerve("topics", "list", "--all", "--json", bootstrap=bootstrap).stdout
    )
    assert "__consumer_offsets" in {t["topic"] for t in with_internal}

    nerve("produce", topic, "-p", "2", bootstrap=bootstrap, stdin=b"x\ny\n")
    described = json.loads(nerve("topics", "describe", topic, "--json", bootstrap=bootstrap).stdout)
    assert described["configs"] == {"retention.ms": "60000"}
    assert [(p["partition"], p["earliest"], p["latest"]) for p in described["partitions"]] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 0, 2),
    ]
    text = nerve("topics", "describe", topic, bootstrap=bootstrap).stdout.decode()
    assert "retention.ms" in text and "LATEST-OFFSET" in text

    assert nerve("topics", "delete", topic, bootstrap=bootstrap).returncode == 0
    missing = nerve("topics", "describe", topic, bootstrap=bootstrap)
    assert missing.returncode == 1
    assert f"unknown topic {topic}" in missing.stderr.decode()
    again = nerve("topics", "delete", topic, bootstrap=bootstrap)
    assert again.returncode == 1


def test_produce_lines_then_consume_them_back_exactly(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    assert nerve("topics", "create", topic, bootstrap=bootstrap).returncode == 0
    lines = b"k1:hello\nk2:world\nk3:caf\xc3\xa9\nk4:\xff\xfe\n"
    produced = nerve("produce", topic, "-K", ":", "-H", "source=cli", "-v",
                     bootstrap=bootstrap, stdin=lines)  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.decode().startswith(f"wrote 4 record(s) to {topic}")

    consumed = nerve("consume", topic, "--from-beginning", "-e", "-k", bootstrap=bootstrap)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.decode() == "k1\thello\nk2\tworld\nk3\tcafé\nk4\t\\xff\\xfe\n"

    template = "{partition}/{offset} {key}={value} {headers}"
    formatted = nerve(
        "consume", topic, "--from-beginning", "-n", "2", "-f", template, bootstrap=bootstrap
    )
    assert formatted.stdout.decode().splitlines() == [
        "0/0 k1=hello source=cli",
        "0/1 k2=world source=cli",
    ]
    # Without --from-beginning a consumer starts at the end: nothing old is printed.
    assert nerve("consume", topic, "-e", bootstrap=bootstrap).stdout == b""


def test_consume_with_a_group_commits_where_it_stopped(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic, group = shared_broker.bootstrap, topic_name(), topic_name("group")
    nerve("produce", topic, bootstrap=bootstrap, stdin=b"".join(b"m%d\n" % i for i in range(5)))
    first = nerve("consume", topic, "--from-beginning", "-g", group, "-n", "3", bootstrap=bootstrap)
    assert first.stdout.decode().splitlines() == ["m0", "m1", "m2"]
    rest = nerve("consume", topic, "-g", group, "-e", bootstrap=bootstrap)
    assert rest.stdout.decode().splitlines() == ["m3", "m4"]


def test_unknown_topic_and_unreachable_broker_fail_clearly(topic_name: TopicNameFactory) -> None:
    unreachable = nerve("topics", "list", bootstrap="127.0.0.1:1")
    assert unreachable.returncode == 1
    assert unreachable.stderr.decode().startswith(
        "nerve topics: cannot reach a broker at 127.0.0.1:1"
    )
    produced = nerve("produce", "t", bootstrap="127.0.0.1:1", stdin=b"x\n")
    assert produced.returncode == 1
