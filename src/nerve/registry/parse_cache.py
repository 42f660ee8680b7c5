"""Parsed schemas kept across requests, bounded by the text they hold rather than by count.

Parsing is the registry's dearest work (protoc for Protobuf, a full walk for the others), and
every compatibility check parses the stored versions again, so results are cached. A count
bound alone (functools.lru_cache) would let a few thousand 10 MB schemas hold gigabytes; this
cache evicts by total text size. Failures are cached too, so the same broken schema sent again
is refused without being parsed again. Parsing itself happens outside the cache's lock: two
threads may parse the same text at once, which costs time, never correctness.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from nerve.registry.schema_types import InvalidSchema

V = TypeVar("V")
Key = tuple[str, str, tuple[tuple[str, str], ...]]  # schema type, text, references


class ParseCache(Generic[V]):
    def __init__(self, max_chars: int = 256 * 1024 * 1024, max_entries: int = 4096) -> None:
        self.max_chars = max_chars
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, V | InvalidSchema] = OrderedDict()
        self._sizes: dict[Key, int] = {}
        self._chars = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(key: Key) -> int:
        return len(key[1]) + sum(len(name) + len(text) for name, text in key[2])

    def get(self, key: Key, parse: Callable[[], V]) -> V:
        """The cached result for ``key``, else ``parse()``'s (kept, as is its InvalidSchema)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is None:
            try:
                found = parse()
            except InvalidSchema as exc:
                found = exc
            self._put(key, found)
        if isinstance(found, InvalidSchema):
            raise type(found)(str(found))  # a fresh one: threads may raise it at once
        return found

    def _put(self, key: Key, value: V | InvalidSchema) -> None:
        size = self._size(key)
        if size > self.max_chars:
            return  # larger than the whole budget: parsed each time, never kept
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self._sizes[key] = size
            self._chars += size
            while self._chars > self.max_chars or len(self._entries) > self.max_entries:
                oldest, _ = self._entries.popitem(last=False)
                self._chars -= self._sizes.pop(oldest)
