"""``nerve dlq list|replay`` run as a real command against a real broker."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from nerve.service.dead_letters import PREFIX, dead_letter_headers, dlq_topic
from tests._broker import BrokerProcess
from tests._ck import In, Out, create_topic, produce_ok, read_to_end
from tests.conftest import TopicNameFactory

DECLINED = ValueError("card declined")


def nerve(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args, "-b", bootstrap],
        capture_output=True,
        text=True,
        timeout=90,
    )


def letter(
    topic: str,
    offset: int,
    value: bytes,
    *,
    key: bytes | None = None,
    service: str = "billing",
    error: BaseException | str = DECLINED,
    partition: int | None = None,
) -> Out:
    """A dead letter as the service runtime writes it."""
    original = [("ce_id", f"evt-{offset}".encode()), ("ce_type", b"OrderPlaced")]
    headers = dead_letter_headers(
        original,
        error=error,
        attempts=3,
        topic=topic,
        partition=0,
        offset=offset,
        service=service,
        handler="charge",
    )
    return Out(value, key=key, headers=headers, partition=partition)  # type: ignore[arg-type]


def setup(bootstrap: str, topic: str, letters: list[Out], dlq_partitions: int = 1) -> str:
    create_topic(bootstrap, topic)
    dlq = dlq_topic(topic)
    create_topic(bootstrap, dlq, partitions=dlq_partitions)
    produce_ok(bootstrap, dlq, letters)
    return dlq


def replay(*args: str, bootstrap: str) -> str:
    done = nerve("dlq", "replay", *args, bootstrap=bootstrap)
    assert done.returncode == 0, done.stderr
    return done.stdout


def headers(record: In) -> dict[str, bytes | None]:
    return dict(record.headers)


def test_list_prints_every_dead_letter_as_json_and_as_a_table(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    long_error = "gateway said no: " + "x" * 200
    setup(bootstrap, topic, [
        letter(topic, 7, b'{"order": 1}', key=b"o-1"),
        letter(topic, 9, b"\xff\xfe", service="audit", error=long_error),
    ])  # fmt: skip

    listed = nerve("dlq", "list", topic, "--json", bootstrap=bootstrap)
    assert listed.returncode == 0, listed.stderr
    first, second = (json.loads(line) for line in listed.stdout.splitlines())
    assert first["partition"] == 0 and first["offset"] == 0
    assert first["key"] == "o-1" and first["key_encoding"] == "utf-8"
    assert first["value"] == '{"order": 1}' and first["value_encoding"] == "utf-8"
    assert first["ce_id"] == "evt-7"
    assert first["headers"] == {"ce_id": "evt-7", "ce_type": "OrderPlaced"}
    assert first[PREFIX + "error"] == "card declined"
    assert first[PREFIX + "error_type"] == "ValueError"
    assert first[PREFIX + "attempts"] == "3"
    assert first[PREFIX + "topic"] == topic
    assert (first[PREFIX + "partition"], first[PREFIX + "offset"]) == ("0", "7")
    assert (first[PREFIX + "service"], first[PREFIX + "handler"]) == ("billing", "charge")
    assert first[PREFIX + "time"].endswith("+00:00")
    assert first["replayed"] is False
    assert second["offset"] == 1 and second["key"] is None
    assert second["value"] == base64.b64encode(b"\xff\xfe").decode()
    assert second["value_encoding"] == "base64"
    assert second[PREFIX + "error_type"] == "DecodeError"
    assert second[PREFIX + "error"] == long_error

    text = nerve("dlq", "list", topic, bootstrap=bootstrap)
    assert text.returncode == 0, text.stderr
    head, row1, row2 = text.stdout.splitlines()
    assert head.split() == [
        "DLQ", "ORIGIN", "KEY", "SERVICE", "HANDLER", "ATTEMPTS", "ERROR-TYPE", "ERROR", "TIME",
        "REPLAYED",
    ]  # fmt: skip
    assert row1.split()[:7] == ["0:0", "0:7", "o-1", "billing", "charge", "3", "ValueError"]
    assert "card declined" in row1 and row1.endswith("no")
    assert row2.split()[:3] == ["0:1", "0:9", "-"]
    assert "gateway said no: xxx" in row2 and "..." in row2 and "x" * 100 not in row2


def test_replay_sends_each_letter_back_once_with_its_original_headers(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    dlq = setup(bootstrap, topic, [
        letter(topic, 3, b"v3", key=b"k3"),
        letter(topic, 4, b"v4", key=b"k4"),
        letter(topic, 5, b"\x00\xff", key=b"k5"),
    ])  # fmt: skip

    out = replay(topic, bootstrap=bootstrap)
    assert out.strip() == (
        f"replayed 3 dead letter(s) from {dlq} to {topic}; "
        "skipped 0 already replayed, 0 not selected"
    )
    back = read_to_end(bootstrap, topic)
    assert [(r.key, r.value) for r in back] == [
        (b"k3", b"v3"),
        (b"k4", b"v4"),
        (b"k5", b"\x00\xff"),
    ]
    for i, record in enumerate(back):
        assert record.headers == [
            ("ce_id", f"evt-{i + 3}".encode()),
            ("ce_type", b"OrderPlaced"),
            ("nerve_replayed_from", f"{dlq}:0:{i}".encode()),
        ]

    again = replay(topic, bootstrap=bootstrap)
    assert again.strip().startswith(f"replayed 0 dead letter(s) from {dlq}")
    assert "skipped 3 already replayed" in again
    assert len(read_to_end(bootstrap, topic)) == 3

    # A letter that arrives later is the only one the next replay sends.
    produce_ok(bootstrap, dlq, [letter(topic, 6, b"v6", key=b"k6")])
    later = replay(topic, bootstrap=bootstrap)
    assert "replayed 1 dead letter(s)" in later and "skipped 3 already replayed" in later
    back = read_to_end(bootstrap, topic)
    assert [(r.key, r.value) for r in back][3:] == [(b"k6", b"v6")]
    assert headers(back[3])["nerve_replayed_from"] == f"{dlq}:0:3".encode()

    listed = nerve("dlq", "list", topic, "--json", bootstrap=bootstrap).stdout.splitlines()
    assert [json.loads(line)["replayed"] for line in listed] == [True] * 4


def test_replay_filters_by_offset_and_service_and_dry_run_sends_nothing(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    dlq = setup(bootstrap, topic, [
        letter(topic, 10, b"a", key=b"a", partition=0),
        letter(topic, 11, b"b", key=b"b", partition=0),
        letter(topic, 12, b"c", key=b"c", partition=0, service="audit"),
        letter(topic, 13, b"d", key=b"d", partition=1),
    ], dlq_partitions=2)  # fmt: skip

    dry = replay(topic, "--dry-run", bootstrap=bootstrap)
    assert f"dry run: would replay 4 dead letter(s) from {dlq}" in dry
    assert "0:0" in dry and "1:0" in dry
    assert read_to_end(bootstrap, topic) == []

    one = replay(topic, "--offset", "0:1", bootstrap=bootstrap)
    assert "replayed 1 dead letter(s)" in one and "3 not selected" in one
    assert [r.value for r in read_to_end(bootstrap, topic)] == [b"b"]

    audit = replay(topic, "--service", "audit", "--dry-run", bootstrap=bootstrap)
    assert "would replay 1 dead letter(s)" in audit and "1 already replayed" in audit
    audit = replay(topic, "--service", "audit", bootstrap=bootstrap)
    assert "replayed 1 dead letter(s)" in audit
    assert [r.value for r in read_to_end(bootstrap, topic)] == [b"b", b"c"]

    # Offset 0 names a letter in both partitions.
    rest = replay(topic, "--offset", "0", bootstrap=bootstrap)
    assert "replayed 2 dead letter(s)" in rest and "2 already replayed, 0 not selected" in rest
    assert sorted(r.value for r in read_to_end(bootstrap, topic)) == [b"a", b"b", b"c", b"d"]
    assert "replayed 0 dead letter(s)" in replay(topic, bootstrap=bootstrap)

    missing = nerve("dlq", "replay", topic, "--offset", "0:42", bootstrap=bootstrap)
    assert missing.returncode == 1
    assert f"no dead letter at offset(s) 0:42 in {dlq}" in missing.stderr


def test_an_unknown_topic_exits_1_with_a_clear_message(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap, topic = shared_broker.bootstrap, topic_name()
    for action in ("list", "replay"):
        missing = nerve("dlq", action, topic, bootstrap=bootstrap)
        assert missing.returncode == 1
        assert missing.stderr.strip() == (
            f"nerve dlq: unknown topic {topic} (and no dead-letter topic {topic}.dlq)"
        )
    # A topic nothing was dead-lettered from has no dead letters: not an error.
    create_topic(bootstrap, topic)
    clean = nerve("dlq", "list", topic, bootstrap=bootstrap)
    assert clean.returncode == 0, clean.stderr
    assert (
        clean.stdout.strip()
        == f"no dead letters of {topic} (nothing dead-lettered yet: no {topic}.dlq)"
    )
    assert nerve("dlq", "list", topic, "--json", bootstrap=bootstrap).stdout == ""
    replay = nerve("dlq", "replay", topic, bootstrap=bootstrap)
    assert replay.returncode == 0 and "replayed 0 dead letter(s)" in replay.stdout
    # An empty dead-letter topic too.
    create_topic(bootstrap, f"{topic}.dlq")
    empty = nerve("dlq", "list", topic, bootstrap=bootstrap)
    assert empty.returncode == 0 and empty.stdout.strip() == f"no dead letters in {topic}.dlq"
