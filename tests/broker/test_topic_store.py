"""Topic metadata on disk (issue 11, items 4 and 9): a file per topic, written atomically, and
start-up that reconciles the files with the partition directories, forgetting nothing on disk."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import pytest

from nerve.broker.config import BrokerConfig
from nerve.broker.topic_store import MetadataError, TopicStore
from nerve.broker.topics import TopicManager
from nerve.protocol.records import encode_batch, validate_batches


def manager(data_dir: Path) -> TopicManager:
    topics = TopicManager(BrokerConfig(data_dir=data_dir))
    topics.open()
    return topics


def write_records(topics: TopicManager, name: str, partition: int = 0, count: int = 3) -> None:
    log = topics.partition(name, partition).log  # type: ignore[union-attr]
    for i in range(count):
        data = bytearray(encode_batch([(b"k%d" % i, b"v%d" % i)]))
        log.append(data, validate_batches(data), 1)


def test_each_topic_has_its_own_file_and_partitions_know_their_topic(tmp_path: Path) -> None:
    topics = manager(tmp_path)
    topic = topics.create("orders", 3, configs={"retention.ms": "1000"})
    assert topic is not None
    entry = json.loads((tmp_path / "meta" / "topics" / "orders.json").read_text())
    assert entry["partitions"] == 3 and entry["configs"] == {"retention.ms": "1000"}
    for index in range(3):
        assert TopicStore.read_partition_metadata(tmp_path / f"orders-{index}") == topic.topic_id
        text = (tmp_path / f"orders-{index}" / "partition.metadata").read_text()
        assert text.startswith("version: 0\ntopic_id: ")
    topics.close()
    again = manager(tmp_path)
    reopened = again.get("orders")
    assert reopened is not None and reopened.topic_id == topic.topic_id
    assert reopened.configs == {"retention.ms": "1000"} and len(reopened.partitions) == 3
    again.close()


def test_the_single_topics_json_of_earlier_versions_is_split_up(tmp_path: Path) -> None:
    topic_id = uuid.uuid4()
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "topics.json").write_text(
        json.dumps(
            {
                "version": 1,
                "topics": [
                    {"name": "old", "id": str(topic_id), "partitions": 2, "configs": {}},
                ],
            }
        )
    )
    topics = manager(tmp_path)
    old = topics.get("old")
    assert old is not None and old.topic_id == topic_id and len(old.partitions) == 2
    assert not (tmp_path / "meta" / "topics.json").exists()
    assert (tmp_path / "meta" / "topics" / "old.json").exists()
    topics.close()


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong name", "no partitions"])
def test_a_damaged_topic_file_refuses_start_up_naming_it(tmp_path: Path, damage: str) -> None:
    topics = manager(tmp_path)
    topics.create("orders", 1)
    topics.close()
    path = tmp_path / "meta" / "topics" / "orders.json"
    text = path.read_text()
    path.write_text(
        {
            "truncated": text[: len(text) // 2],
            "not json": "\x00\x01garbage",
            "wrong name": text.replace('"orders"', '"other"'),
            "no partitions": text.replace('"partitions": 1', '"partitions": 0'),
        }[damage]
    )
    with pytest.raises(MetadataError) as refused:
        manager(tmp_path)
    message = str(refused.value)
    assert str(path) in message and "\n" not in message
    assert "move it out of the way to rebuild" in message


def test_a_topic_whose_file_is_gone_is_rebuilt_from_its_partitions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topics = manager(tmp_path)
    topic = topics.create("orders", 2)
    assert topic is not None
    write_records(topics, "orders", 1)
    topics.close()
    os.unlink(tmp_path / "meta" / "topics" / "orders.json")
    with caplog.at_level(logging.WARNING, "nerve.broker"):
        again = manager(tmp_path)
    rebuilt = again.get("orders")
    assert rebuilt is not None and rebuilt.topic_id == topic.topic_id
    assert len(rebuilt.partitions) == 2 and rebuilt.partitions[1].log.log_end_offset == 3
    assert "rebuilt it from them" in caplog.text
    assert (tmp_path / "meta" / "topics" / "orders.json").exists(), "and written down again"
    again.close()


def test_the_whole_meta_directory_gone_forgets_no_topic_with_data(tmp_path: Path) -> None:
    topics = manager(tmp_path)
    for name in ("a", "b", "c"):
        topics.create(name, 1)
        write_records(topics, name)
    topics.create("empty", 1)
    topics.close()
    for path in (tmp_path / "meta" / "topics").iterdir():
        path.unlink()
    again = manager(tmp_path)
    assert {"a", "b", "c"} <= set(again.topics)
    assert "empty" not in again.topics, "no data: a creation never finished, removed"
    assert not (tmp_path / "empty-0").exists()
    again.close()


def test_a_deletion_interrupted_by_a_crash_is_finished(tmp_path: Path) -> None:
    topics = manager(tmp_path)
    topic = topics.create("doomed", 2)
    assert topic is not None
    write_records(topics, "doomed")
    topics.close()
    for index in range(2):  # the first step of a deletion, then the crash
        directory = tmp_path / f"doomed-{index}"
        directory.rename(directory.with_name(f"{directory.name}.{topic.topic_id.hex}-delete"))
    again = manager(tmp_path)
    assert "doomed" not in again.topics
    assert not list(tmp_path.glob("doomed-*"))
    assert not (tmp_path / "meta" / "topics" / "doomed.json").exists()
    again.close()


def test_partitions_beyond_a_topics_count_are_kept_when_they_hold_data(tmp_path: Path) -> None:
    topics = manager(tmp_path)
    topics.create("grow", 1)
    topics.add_partitions("grow", 3)
    write_records(topics, "grow", 2)
    topics.close()
    path = tmp_path / "meta" / "topics" / "grow.json"
    path.write_text(path.read_text().replace('"partitions": 3', '"partitions": 1'))
    again = manager(tmp_path)
    grown = again.get("grow")
    assert grown is not None and len(grown.partitions) == 3
    assert grown.partitions[2].log.log_end_offset == 3
    again.close()


def test_delete_removes_everything_and_survives_restart(tmp_path: Path) -> None:
    topics = manager(tmp_path)
    topics.create("gone", 2)
    write_records(topics, "gone")
    topics.delete("gone")
    assert not list(tmp_path.glob("gone-*"))
    topics.close()
    assert "gone" not in manager(tmp_path).topics
