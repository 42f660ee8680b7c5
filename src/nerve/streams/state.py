"""Partitioned state: the stores of one task (one partition of one sub-topology).

Engine (measured, bench/streams.py notes): stores are Python dicts in memory, persisted at every
commit to a local RocksDB (``rocksdict``) and changelogged to compacted Kafka topics. A dict
read or write is ~0.16 us; RocksDB through rocksdict ~1.8 us per write even batched, SQLite
~6.7 us: processing runs at memory speed and pays RocksDB once per changed key per commit, not
per record. The cost: a task's state must fit in memory (docs/streams.md).

What each layer holds:

- memory: the current state, including changes of the batch in hand;
- the changelog topic: every committed change, in the batch's transaction with
  ``exactly_once=True``; the source of truth;
- the local RocksDB: the state as of the last commit, with the changelog offsets it covers (the
  checkpoint), so a restart or a partition coming back restores only the changelog's tail.

A batch that cannot commit is rolled back in memory from the old values kept as it wrote.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nerve.streams.serde import decode_key, decode_value, encode_key, encode_value

log = logging.getLogger("nerve.streams")

_MISSING = object()
_CHECKPOINT = b"\x00checkpoint"


class Store:
    """A key-value store of one task. Values are Python objects (see ``serde``)."""

    __slots__ = ("changelog", "data", "name", "undo")

    def __init__(self, name: str, changelog: str | None) -> None:
        self.name = name
        self.changelog = changelog
        self.data: dict[Any, Any] = {}
        # Keys written since the last commit, with the value each had before.
        self.undo: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __contains__(self, key: Any) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: Any, value: Any) -> None:
        if value is None:
            self.delete(key)
            return
        if key not in self.undo:
            self.undo[key] = self.data.get(key, _MISSING)
        self.data[key] = value

    def delete(self, key: Any) -> None:
        if key not in self.data:
            return
        if key not in self.undo:
            self.undo[key] = self.data[key]
        del self.data[key]

    def items(self) -> Iterator[tuple[Any, Any]]:
        return iter(list(self.data.items()))

    def rollback(self) -> None:
        for key, old in self.undo.items():
            if old is _MISSING:
                self.data.pop(key, None)
            else:
                self.data[key] = old
        self.undo.clear()


class TaskState:
    """Every store of one task, and where they persist (``directory``; None: memory only,
    restored from the changelog from its start, as in the test driver)."""

    def __init__(self, task_id: str, partition: int, directory: Path | None) -> None:
        self.task_id = task_id
        self.partition = partition
        self.directory = directory
        self.stores: dict[str, Store] = {}
        # The next offset of each changelog after the writes of this task (the checkpoint).
        self.offsets: dict[str, int] = {}
        self._db: Any = None

    def store(self, name: str, changelog: str | None = None) -> Store:
        store = self.stores.get(name)
        if store is None:
            store = self.stores[name] = Store(name, changelog)
        return store

    # -- local persistence -----------------------------------------------------------------

    def open(self) -> None:
        """Load what the local database holds (the state as of its checkpoint)."""
        if self.directory is None:
            return
        from rocksdict import Rdict

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(self.directory))
        except Exception as exc:  # a damaged database: the changelog has everything
            log.warning(
                "task %s: local state at %s cannot be opened (%s): restoring it from the "
                "changelog instead",
                self.task_id,
                self.directory,
                exc,
            )
            shutil.rmtree(self.directory, ignore_errors=True)
            self._db = Rdict(str(self.directory))
        checkpoint = self._db.get(_CHECKPOINT)
        if checkpoint is None:
            # Data without a checkpoint cannot be trusted to match any changelog position.
            for key in list(self._db.keys()):
                del self._db[key]
            return
        self.offsets = json.loads(checkpoint)
        by_prefix = {s.name.encode() + b"\x00": s for s in self.stores.values()}
        for raw_key, raw_value in self._db.items():
            if raw_key == _CHECKPOINT:
                continue
            name, _, key = raw_key.partition(b"\x00")
            store = by_prefix.get(name + b"\x00")
            if store is not None:
                store.data[decode_key(key)] = decode_value(raw_value)

    def persist(self) -> None:
        """After a commit: the changed keys and the changelog offsets, in one write batch."""
        changed = [s for s in self.stores.values() if s.undo]
        if self._db is not None and (changed or self.offsets):
            from rocksdict import WriteBatch

            batch = WriteBatch()
            for store in changed:
                prefix = store.name.encode() + b"\x00"
                for key in store.undo:
                    raw = prefix + (encode_key(key) or b"")
                    value = store.data.get(key, _MISSING)
                    if value is _MISSING:
                        batch.delete(raw)
                    else:
                        batch.put(raw, encode_value(value))
            batch.put(_CHECKPOINT, json.dumps(self.offsets).encode())
            self._db.write(batch)
        for store in changed:
            store.undo.clear()

    def reset(self) -> None:
        """Forget the local state (memory, database, checkpoint): it belongs to another
        changelog than the cluster's, so the task restores from the changelog's start."""
        for store in self.stores.values():
            store.data.clear()
            store.undo.clear()
        self.offsets = {}
        if self._db is not None:
            for key in list(self._db.keys()):
                del self._db[key]

    def rollback(self) -> None:
        for store in self.stores.values():
            store.rollback()

    def changes(self) -> Iterator[tuple[str, bytes | None, bytes | None]]:
        """(changelog topic, key, value) of every key changed since the last commit."""
        for store in self.stores.values():
            if store.changelog is None:
                continue
            for key in store.undo:
                value = store.data.get(key, _MISSING)
                yield (
                    store.changelog,
                    encode_key(key),
                    None if value is _MISSING else encode_value(value),
                )

    def apply(self, changelog: str, key: bytes | None, value: bytes | None) -> None:
        """A changelog record read back in a restore."""
        for store in self.stores.values():
            if store.changelog == changelog:
                decoded = decode_key(key)
                if value is None:
                    store.data.pop(decoded, None)
                else:
                    store.data[decoded] = decode_value(value)
                store.undo[decoded] = _MISSING  # persisted with the next checkpoint
                return

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
