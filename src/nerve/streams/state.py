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


class Raw(bytes):
    """A value as the changelog or RocksDB holds it, decoded on first use: a restore only
    files bytes away (measured: decoding every value made restoring a million keys take ~50 s,
    most of it for keys never read again before they change)."""

    __slots__ = ()


class Store:
    """A key-value store of one task. Values are Python objects (see ``serde``)."""

    __slots__ = ("changelog", "data", "dirty", "encoded", "name", "restored", "undo")

    def __init__(self, name: str, changelog: str | None) -> None:
        self.name = name
        self.changelog = changelog
        self.data: dict[Any, Any] = {}
        # Keys written since the last commit, with the value each had before.
        self.undo: dict[Any, Any] = {}
        # Keys written since they last went to the changelog (a subset of ``undo``'s: the
        # changelog may be written several times before a commit), in the order written.
        self.dirty: dict[Any, None] = {}
        # Keys written to the changelog since the last commit, with the bytes written (the
        # task's pending write batch for RocksDB holds them too).
        self.encoded: dict[Any, bytes | None] = {}
        # Keys read back from the changelog: already in Kafka, written to RocksDB at the next
        # commit (not at the restore: processing starts sooner), never rolled back.
        self.restored: set[Any] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) is Raw:
            value = self.data[key] = decode_value(value)
        return value

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
        self.dirty[key] = None

    def delete(self, key: Any) -> None:
        if key not in self.data:
            return
        if key not in self.undo:
            self.undo[key] = self.data[key]
        del self.data[key]
        self.dirty[key] = None

    def items(self) -> Iterator[tuple[Any, Any]]:
        return iter([(key, self.get(key)) for key in list(self.data)])

    def snapshot(self) -> dict[Any, Any]:
        """Every row, decoded."""
        return dict(self.items())

    def rollback(self) -> None:
        for key, old in self.undo.items():
            if old is _MISSING:
                self.data.pop(key, None)
            else:
                self.data[key] = old
        self.undo.clear()
        self.dirty.clear()


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
        # What changes() wrote to the changelogs since the last commit, for the local
        # database: the commit then only writes it (built as the changelog is written, the
        # commit does not hold up the records behind it doing so; measured 3 us a key).
        self._batch: Any = None
        self._by_changelog: dict[str, Store] = {}

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
        from rocksdict import Options, Rdict

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        # Raw mode: keys and values are the bytes given (rocksdict would otherwise wrap each
        # value in its own encoding; measured: loading a million keys 14 s -> 3 s).
        try:
            self._db = Rdict(str(self.directory), options=Options(raw_mode=True))
        except Exception as exc:  # a damaged database: the changelog has everything
            log.warning(
                "task %s: local state at %s cannot be opened (%s): restoring it from the "
                "changelog instead",
                self.task_id,
                self.directory,
                exc,
            )
            shutil.rmtree(self.directory, ignore_errors=True)
            self._db = Rdict(str(self.directory), options=Options(raw_mode=True))
        checkpoint = self._db.get(_CHECKPOINT)
        if checkpoint is None:
            # Data without a checkpoint cannot be trusted to match any changelog position.
            for key in list(self._db.keys()):
                del self._db[key]
            return
        self.offsets = json.loads(checkpoint)
        by_name = {s.name.encode(): s.data for s in self.stores.values()}
        iterator = self._db.iter()
        iterator.seek_to_first()
        while iterator.valid():
            raw_key = iterator.key()
            name, _, key = raw_key.partition(b"\x00")
            data = by_name.get(name)
            if data is not None:
                data[decode_key(key)] = Raw(iterator.value())
            iterator.next()

    def persist(self) -> None:
        """After a commit: the changed keys and the changelog offsets, in one write batch."""
        changed = [s for s in self.stores.values() if s.undo or s.restored]
        if self._db is not None and (changed or self.offsets):
            from rocksdict import WriteBatch

            batch, self._batch = self._batch, None
            if batch is None:
                batch = WriteBatch(raw_mode=True)
            for store in changed:
                prefix = store.name.encode() + b"\x00"
                encoded = store.encoded
                keys = store.undo.keys() | store.restored if store.restored else store.undo
                for key in keys:
                    if key in encoded:
                        continue  # in the batch already, as changes() wrote it
                    raw = prefix + (encode_key(key) or b"")
                    value = store.data.get(key, _MISSING)
                    if value is _MISSING:
                        batch.delete(raw)
                    elif type(value) is Raw:
                        batch.put(raw, bytes(value))
                    else:
                        batch.put(raw, encode_value(value))
            batch.put(_CHECKPOINT, json.dumps(self.offsets).encode())
            self._db.write(batch)
        for store in changed:
            store.undo.clear()
            store.encoded.clear()
            store.restored.clear()

    def reset(self) -> None:
        """Forget the local state (memory, database, checkpoint): it belongs to another
        changelog than the cluster's, so the task restores from the changelog's start."""
        for store in self.stores.values():
            store.data.clear()
            store.undo.clear()
            store.dirty.clear()
            store.encoded.clear()
        self.offsets = {}
        self._batch = None
        if self._db is not None:
            for key in list(self._db.keys()):
                del self._db[key]

    def rollback(self) -> None:
        self._batch = None
        for store in self.stores.values():
            store.rollback()
            store.encoded.clear()

    def pending(self) -> int:
        """How many keys changed since they last went to the changelog."""
        return sum(len(store.dirty) for store in self.stores.values())

    def changes(self) -> Iterator[tuple[str, bytes | None, bytes | None]]:
        """(changelog topic, key, value) of every key changed since the last call (since
        the last commit if it was not called in between)."""
        batch = self._batch
        if batch is None and self._db is not None:
            from rocksdict import WriteBatch

            batch = self._batch = WriteBatch(raw_mode=True)
        for store in self.stores.values():
            dirty, store.dirty = store.dirty, {}
            if store.changelog is None:
                continue
            encoded = store.encoded
            prefix = store.name.encode() + b"\x00"
            for key in dirty:
                value = store.data.get(key, _MISSING)
                if value is _MISSING:
                    data = None
                elif type(value) is Raw:
                    data = bytes(value)
                else:
                    data = encode_value(value)
                encoded[key] = data
                raw = encode_key(key)
                if batch is not None:
                    if data is None:
                        batch.delete(prefix + (raw or b""))
                    else:
                        batch.put(prefix + (raw or b""), data)
                yield store.changelog, raw, data

    def apply(self, changelog: str, key: bytes | None, value: bytes | None) -> None:
        """A changelog record read back in a restore."""
        store = self._by_changelog.get(changelog)
        if store is None:
            self._by_changelog = {s.changelog: s for s in self.stores.values() if s.changelog}
            store = self._by_changelog.get(changelog)
            if store is None:
                return
        decoded = decode_key(key)
        if value is None:
            store.data.pop(decoded, None)
        else:
            store.data[decoded] = Raw(value)
        store.restored.add(decoded)

    def close(self) -> None:
        self._batch = None
        if self._db is not None:
            self._db.close()
            self._db = None
