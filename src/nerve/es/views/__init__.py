"""Where a projection's read model lives: a SQLite file (the default) or a PostgreSQL schema.

Each database keeps, beside the read model, the projection's position (the next offset of each
partition) written in the same transaction as the update, a pointer to the live generation of
the view (which build of it readers see, and the projection ``version`` that built it), and the
events that failed. A rebuild writes a new generation beside the live one and switches the
pointer in one transaction (:mod:`nerve.es.projection`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ViewError(RuntimeError):
    """The view cannot be built or switched as asked (the message says why)."""


@dataclass(frozen=True)
class Generation:
    """One build of a view: its number (1, 2, ... a rebuild makes the next) and the projection
    ``version`` whose function built it."""

    number: int
    version: int


class Session(ABC):
    """One connection writing one generation (the live one, or a build beside it)."""

    #: what the projection's function receives: a sqlite3 or psycopg connection
    conn: Any

    @abstractmethod
    def begin(self) -> Generation | None:
        """Start a transaction and return the generation it writes to, as the database says
        now (locked until commit, so a switch cannot happen in between); None if the one this
        session was opened for is no longer there (switched, replaced)."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset of each partition this generation has applied up to."""

    @abstractmethod
    def claim(self, topic: str, partition: int) -> int:
        """The partition's next offset as stored (0 if none), read inside the current
        transaction and locked until it ends: events below it were applied by another process
        (a replica that held the partition before a rebalance), so they are skipped."""

    @abstractmethod
    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        """Record the position, inside the current transaction."""

    @abstractmethod
    def failed(self, topic: str, partition: int, offset: int, error: str) -> None:
        """Record an event the function could not fold, inside the current transaction."""

    @abstractmethod
    def close(self) -> None: ...


class Views(ABC):
    """The database of one projection (by name)."""

    def __init__(self, projection: str) -> None:
        self.projection = projection

    @abstractmethod
    def live(self) -> Generation | None:
        """The generation readers see, None before the projection first ran."""

    @abstractmethod
    def adopt(self, version: int) -> Generation:
        """The live generation; made (number 1, of ``version``) if there is none yet."""

    @abstractmethod
    def session(self, generation: Generation, *, building: bool = False) -> Session:
        """A session writing ``generation``: the live view, or (``building``) the build."""

    @abstractmethod
    def building(self) -> Generation | None:
        """The build in progress beside the live view, if any (left by an interrupted rebuild)."""

    @abstractmethod
    def rebuilding(self) -> AbstractContextManager[None]:
        """Held for the whole of a rebuild: two at once would both fold every event into the
        same build. Raises ViewError if another process holds it."""

    @abstractmethod
    def start_build(self, version: int) -> tuple[Generation, bool]:
        """A build of ``version`` beside the live view: the one in progress if it is of that
        version (True: resumed), else a new empty one (a build of another version dropped)."""

    @abstractmethod
    def switch(self, build: Generation) -> Generation | None:
        """Make the build the live view, with its positions, in one transaction; then drop the
        old one. The generation that was live before, if any."""

    @abstractmethod
    def failures(self) -> list[tuple[str, int, int, str]]:
        """The live generation's failed events: topic, partition, offset, error."""

    @abstractmethod
    def describe(self) -> str:
        """Where the view is, for log lines and the CLI (no password)."""


def open_views(database: str | Path, projection: str) -> Views:
    """``postgresql://...`` (or ``postgres://``): a schema per projection in that database;
    anything else: a SQLite file."""
    text = str(database)
    if text.startswith(("postgresql://", "postgres://")):
        from nerve.es.views.postgres import PostgresViews

        return PostgresViews(text, projection)
    from nerve.es.views.sqlite import SQLiteViews

    return SQLiteViews(Path(text), projection)
