"""A projection's read model in a SQLite file. The file belongs to one projection when it is
rebuilt: the build is a second file beside it (``orders.rebuild.db`` for ``orders.db``), and the
switch replaces the live file's tables with the build's, its positions and failures with them,
in one transaction of the live file, so readers of ``orders.db`` see the old view or the new,
never a mix. Tables whose names start with ``nerve_`` are the projection's own."""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nerve.es.views import Generation, Session, ViewError, Views

_TABLES = (
    """create table if not exists nerve_positions (
    projection text, topic text, partition integer, next_offset integer,
    primary key (projection, topic, partition))""",
    """create table if not exists nerve_failures (
    projection text, topic text, partition integer, offset integer, error text, at real)""",
    """create table if not exists nerve_projections (
    projection text primary key, generation integer not null, version integer not null)""",
)
# A switch copies the whole view inside one write transaction: writers wait for it.
_BUSY_TIMEOUT_S = 120.0
_USER_OBJECTS = (
    "select type, name, sql from {schema}.sqlite_master where name not like 'nerve\\_%' "
    "escape '\\' and name not like 'sqlite\\_%' escape '\\' and sql is not null"
)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
    )
    db.execute("pragma journal_mode=wal")
    for table in _TABLES:
        db.execute(table)
    return db


def _generation(db: sqlite3.Connection, projection: str) -> Generation | None:
    row = db.execute(
        "select generation, version from nerve_projections where projection = ?", (projection,)
    ).fetchone()
    return None if row is None else Generation(row[0], row[1])


class SQLiteSession(Session):
    def __init__(self, path: Path, projection: str, generation: Generation) -> None:
        self.path = path
        self.projection = projection
        self.generation = generation
        self.conn = _connect(path)

    def begin(self) -> Generation | None:
        self.conn.execute("begin immediate")  # the write lock first: a switch waits, or we do
        found = _generation(self.conn, self.projection)
        return found if found == self.generation else None

    def commit(self) -> None:
        self.conn.execute("commit")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("rollback")

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self.conn.execute(
            "select topic, partition, next_offset from nerve_positions where projection = ?",
            (self.projection,),
        ).fetchall()
        return {(t, p): o for t, p, o in rows}

    def claim(self, topic: str, partition: int) -> int:
        row = self.conn.execute(  # the transaction holds the file's write lock already
            "select next_offset from nerve_positions "
            "where projection = ? and topic = ? and partition = ?",
            (self.projection, topic, partition),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        self.conn.execute(
            "insert into nerve_positions values (?, ?, ?, ?) on conflict "
            "(projection, topic, partition) do update set next_offset = excluded.next_offset",
            (self.projection, topic, partition, next_offset),
        )

    def failed(self, topic: str, partition: int, offset: int, error: str) -> None:
        self.conn.execute(
            "insert into nerve_failures values (?, ?, ?, ?, ?, ?)",
            (self.projection, topic, partition, offset, error, time.time()),
        )

    def close(self) -> None:
        self.conn.close()


class SQLiteViews(Views):
    def __init__(self, path: Path, projection: str) -> None:
        super().__init__(projection)
        self.path = path
        self.build_path = path.with_name(f"{path.stem}.rebuild{path.suffix or '.db'}")

    def describe(self) -> str:
        return str(self.path)

    def live(self) -> Generation | None:
        db = _connect(self.path)
        try:
            return _generation(db, self.projection)
        finally:
            db.close()

    def adopt(self, version: int) -> Generation:
        db = _connect(self.path)
        try:
            db.execute("begin immediate")
            found = _generation(db, self.projection)
            if found is None:
                # A file written before generations were kept: its view is version 1's.
                (older,) = db.execute(
                    "select count(*) from nerve_positions where projection = ?",
                    (self.projection,),
                ).fetchone()
                found = Generation(1, 1 if older else version)
                db.execute(
                    "insert into nerve_projections values (?, ?, ?)",
                    (self.projection, found.number, found.version),
                )
            db.execute("commit")
            return found
        finally:
            db.close()

    def session(self, generation: Generation, *, building: bool = False) -> SQLiteSession:
        return SQLiteSession(
            self.build_path if building else self.path, self.projection, generation
        )

    def building(self) -> Generation | None:
        if not self.build_path.exists():
            return None
        db = _connect(self.build_path)
        try:
            return _generation(db, self.projection)
        finally:
            db.close()

    @contextmanager
    def rebuilding(self) -> Iterator[None]:
        path = self.path.with_name(f"{self.path.stem}.rebuild.lock")
        with path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ViewError(f"another rebuild of {self.path} is running") from None
            yield  # the lock goes with the file's closing

    def _others(self) -> list[str]:
        db = _connect(self.path)
        try:
            rows = db.execute(
                "select projection from nerve_positions union select projection from "
                "nerve_projections union select projection from nerve_failures"
            ).fetchall()
            return sorted(name for (name,) in rows if name != self.projection)
        finally:
            db.close()

    def start_build(self, version: int) -> tuple[Generation, bool]:
        others = self._others()
        if others:
            raise ViewError(
                f"{self.path} also holds the projection(s) {', '.join(others)}: a rebuild "
                "replaces every table of the file, so each projection needs a file of its own"
            )
        found = self.building()
        if found is not None and found.version == version:
            return found, True
        self._remove_build()
        live = self.live()
        build = Generation((live.number if live else 0) + 1, version)
        db = _connect(self.build_path)
        try:
            db.execute(
                "insert into nerve_projections values (?, ?, ?)",
                (self.projection, build.number, build.version),
            )
        finally:
            db.close()
        return build, False

    def _remove_build(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.build_path}{suffix}").unlink(missing_ok=True)

    def switch(self, build: Generation) -> Generation | None:
        db = _connect(self.path)
        try:
            db.execute("attach database ? as build", (str(self.build_path),))
            db.execute("begin immediate")
            try:
                row = db.execute(
                    "select generation, version from build.nerve_projections where projection = ?",
                    (self.projection,),
                ).fetchone()
                if row is None or Generation(row[0], row[1]) != build:
                    raise ViewError(f"the build of {self.path} was replaced by another rebuild")
                old = _generation(db, self.projection)
                for kind, name, _ in db.execute(_USER_OBJECTS.format(schema="main")).fetchall():
                    if kind in ("table", "view"):
                        db.execute(f'drop {kind} if exists main."{name}"')
                made = db.execute(_USER_OBJECTS.format(schema="build")).fetchall()
                for kind, name, sql in made:
                    if kind == "table":  # unqualified, so made in main; data copied as is
                        db.execute(sql)
                        db.execute(f'insert into main."{name}" select * from build."{name}"')
                for kind, _, sql in made:
                    if kind != "table":  # indexes, triggers, views: after the data
                        db.execute(sql)
                for table in ("nerve_positions", "nerve_failures"):
                    db.execute(f"delete from main.{table} where projection = ?", (self.projection,))
                    db.execute(
                        f"insert into main.{table} select * from build.{table} "
                        "where projection = ?",
                        (self.projection,),
                    )
                db.execute(
                    "insert into main.nerve_projections values (?, ?, ?) on conflict "
                    "(projection) do update set generation = excluded.generation, "
                    "version = excluded.version",
                    (self.projection, build.number, build.version),
                )
                db.execute("commit")
            except BaseException:
                db.execute("rollback")
                raise
            db.execute("detach database build")
        finally:
            db.close()
        self._remove_build()
        return old

    def failures(self) -> list[tuple[str, int, int, str]]:
        db = _connect(self.path)
        try:
            rows = db.execute(
                "select topic, partition, offset, error from nerve_failures "
                "where projection = ? order by at",
                (self.projection,),
            ).fetchall()
            return [(t, p, o, e) for t, p, o, e in rows]
        finally:
            db.close()
