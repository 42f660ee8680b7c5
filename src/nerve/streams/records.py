"""What flows between operators: records with a key, a value and an event time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

V = TypeVar("V")


@dataclass(slots=True)
class Record:
    """One record inside a topology. ``timestamp`` is its event time in epoch milliseconds;
    ``cause`` the CloudEvents envelope of the input it came from (emitted events inherit its
    correlation id), ``origin`` the topic it was read from."""

    key: Any
    value: Any
    timestamp: int
    cause: Any = None
    origin: str = ""
    old: Any = None
    """A table's change carries the value it replaces (None: the key was absent)."""
    headers: list[tuple[str, Any]] | None = field(default=None)

    def with_(
        self, key: Any = ..., value: Any = ..., timestamp: int | None = None, old: Any = None
    ) -> Record:
        return Record(
            self.key if key is ... else key,
            self.value if value is ... else value,
            self.timestamp if timestamp is None else timestamp,
            self.cause,
            self.origin,
            old,
            self.headers,
        )


class WindowKey(tuple[Any, int, int]):
    """A windowed table's key: (key, window start, window end)."""

    __slots__ = ()

    def __new__(cls, key: Any, start: int, end: int) -> WindowKey:
        return tuple.__new__(cls, (key, start, end))

    @property
    def key(self) -> Any:
        return self[0]

    @property
    def start(self) -> int:
        return int(self[1])

    @property
    def end(self) -> int:
        return int(self[2])


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Windowed(Generic[V]):
    """A windowed aggregate: the key, the window's bounds (epoch ms; ``end`` as Kafka Streams
    reports it: exclusive for time windows, inclusive for sliding and session windows) and the
    value. ``start_time`` and ``end_time`` give the bounds as datetimes."""

    key: Any
    start: int
    end: int
    value: V

    @property
    def start_time(self) -> datetime:
        return _time(self.start)

    @property
    def end_time(self) -> datetime:
        return _time(self.end)

    @property
    def since(self) -> datetime:
        return _time(self.start)


@dataclass(frozen=True, slots=True)
class Change(Generic[V]):
    """A table's change of one key: the old and the new value (None: absent)."""

    key: Any
    old: V | None
    new: V | None
