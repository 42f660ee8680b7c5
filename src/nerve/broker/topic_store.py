"""Topic metadata on disk: a small file per topic, and Kafka's ``partition.metadata`` per partition.

Kafka keeps topics in its metadata log (ZooKeeper-era Kafka: one node per topic). nerve keeps
``<data-dir>/meta/topics/<name>.json`` for each topic, replaced atomically (write, fsync, rename,
one fsync of the directory for a whole batch of changes), so a change costs one small write
whatever the number of topics, and a damaged file concerns one topic, not all of them. Every
partition directory also holds ``partition.metadata`` with the topic id, as Kafka's do, so the
partition directories alone can rebuild a topic whose file is gone.

Deleting a topic first renames its partition directories to Kafka's
``<topic>-<partition>.<id>-delete``, then removes its file: a crash in between leaves a deletion
that start-up completes, never a half-deleted topic that comes back.

Before this layout everything was one ``meta/topics.json``; it is read once and split up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PARTITION_METADATA = "partition.metadata"
DELETE_SUFFIX = "-delete"
_VERSION = 1
_PARTITION_DIR = re.compile(r"^(?P<topic>[a-zA-Z0-9._-]+)-(?P<partition>\d+)$")
_DELETED_DIR = re.compile(
    r"^(?P<topic>[a-zA-Z0-9._-]+)-(?P<partition>\d+)\.(?P<id>[0-9a-f]{32})" + DELETE_SUFFIX + "$"
)


class MetadataError(Exception):
    """Topic metadata on disk that start-up cannot trust: one line says what and what to do."""


@dataclass
class TopicRecord:
    """What is kept of one topic: enough to reopen its partitions as they were."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _VERSION,
                "name": self.name,
                "id": str(self.topic_id),
                "partitions": self.partitions,
                "configs": self.configs,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TopicRecord:
        entry = json.loads(text)
        return cls.from_entry(entry)

    @classmethod
    def from_entry(cls, entry: dict) -> TopicRecord:
        configs = entry["configs"]
        if not isinstance(configs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in configs.items()
        ):
            raise ValueError("configs must map names to strings")
        partitions = entry["partitions"]
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be a positive integer, not {partitions!r}")
        return cls(str(entry["name"]), uuid.UUID(entry["id"]), partitions, dict(configs))


class TopicStore:
    """Reads and writes ``meta/topics/`` and the partition directories' own metadata."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / "meta" / "topics"
        self._legacy = self.data_dir / "meta" / "topics.json"

    # -- topic files -----------------------------------------------------------------------

    def load(self) -> dict[str, TopicRecord]:
        """Every topic file, by name; raises MetadataError naming a file that cannot be read."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()
        records: dict[str, TopicRecord] = {}
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = TopicRecord.from_json(path.read_text())
                if record.name != path.stem:
                    raise ValueError(f"it names topic {record.name!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise MetadataError(
                    f"topic metadata {path} is damaged ({_short(exc)}). Restore it, or move it "
                    "out of the way to rebuild the topic from its partition directories (its "
                    "configs would be back to their defaults)"
                ) from None
            records[record.name] = record
        if self._legacy.exists():
            records.update(self._migrate(records))
        return records

    def _migrate(self, existing: dict[str, TopicRecord]) -> dict[str, TopicRecord]:
        """Split the single ``topics.json`` of earlier versions into one file per topic."""
        try:
            entries = json.loads(self._legacy.read_text())["topics"]
            records = [TopicRecord.from_entry(entry) for entry in entries]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MetadataError(
                f"topic metadata {self._legacy} is damaged ({_short(exc)}). Restore it, or move "
                "it out of the way to rebuild the topics from their partition directories (their "
                "configs would be back to their defaults)"
            ) from None
        fresh = [r for r in records if r.name not in existing]  # a crash mid-migration
        self.save(fresh)
        self._legacy.unlink()
        _fsync_dir(self._legacy.parent)
        return {r.name: r for r in fresh}

    def save(self, records: Iterable[TopicRecord]) -> None:
        """Write these topics' files (each atomically), then one fsync of the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        wrote = False
        for record in records:
            path = self.directory / f"{record.name}.json"
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "w") as f:
                    f.write(record.to_json())
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            wrote = True
        if wrote:
            _fsync_dir(self.directory)

    def remove(self, names: Iterable[str]) -> None:
        removed = False
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{name}.json").unlink()
                removed = True
        if removed:
            _fsync_dir(self.directory)

    # -- partition directories -------------------------------------------------------------

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def partition_dirs(self) -> dict[str, dict[int, Path]]:
        """Every ``<topic>-<partition>`` directory of the data dir, by topic and partition."""
        found: dict[str, dict[int, Path]] = {}
        for path in self.data_dir.iterdir():
            match = _PARTITION_DIR.match(path.name)
            if match and path.is_dir():
                partitions = found.setdefault(match["topic"], {})
                partitions[int(match["partition"])] = path
        return found

    def deleted_dirs(self) -> dict[str, uuid.UUID]:
        """Topics (name -> id) whose partition directories were renamed for deletion."""
        out: dict[str, uuid.UUID] = {}
        for path in self.data_dir.iterdir():
            match = _DELETED_DIR.match(path.name)
            if match:
                out[match["topic"]] = uuid.UUID(hex=match["id"])
        return out

    def remove_deleted_dirs(self) -> None:
        for path in self.data_dir.iterdir():
            if _DELETED_DIR.match(path.name):
                shutil.rmtree(path, ignore_errors=True)

    def mark_deleted(self, directory: Path, topic_id: uuid.UUID) -> Path:
        """Rename a partition directory to its ``-delete`` name (Kafka's), returning it."""
        target = directory.with_name(f"{directory.name}.{topic_id.hex}{DELETE_SUFFIX}")
        os.rename(directory, target)
        return target

    @staticmethod
    def write_partition_metadata(directory: Path, topic_id: uuid.UUID) -> None:
        """Kafka's ``partition.metadata``: the format version and the topic id (base64).

        Not fsynced: it only helps rebuild a topic whose file is lost (a new id would do), and
        an fsync per partition made creating thousands of partitions take minutes.
        """
        encoded = base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")
        path = directory / PARTITION_METADATA
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"version: 0\ntopic_id: {encoded}\n")
        os.replace(tmp, path)

    def sync_partition_dirs(self) -> None:
        """Make new partition directories durable before the file that lists them."""
        _fsync_dir(self.data_dir)

    @staticmethod
    def read_partition_metadata(directory: Path) -> uuid.UUID | None:
        try:
            text = (directory / PARTITION_METADATA).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "topic_id":
                raw = value.strip()
                with contextlib.suppress(ValueError):
                    return uuid.UUID(bytes=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return None


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
