"""A projection's read model in PostgreSQL (psycopg 3): the live view is the schema named
after the projection (readers query ``orders_by_customer.orders``); a rebuild writes the schema
``<name>__g<N>`` beside it, and the switch renames the two schemas and moves the pointer in one
transaction (DDL is transactional in PostgreSQL), then drops the old one. The projection's own
tables are in the schema ``nerve``: ``projections`` (the live generation), ``builds``,
``positions`` and ``failures``, keyed by projection and generation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from nerve.es.views import Generation, Session, ViewError, Views

_SETUP = (
    "create schema if not exists nerve",
    """create table if not exists nerve.projections (
    projection text primary key, generation integer not null, version integer not null,
    since timestamptz not null default now())""",
    """create table if not exists nerve.builds (
    projection text primary key, generation integer not null, version integer not null,
    since timestamptz not null default now())""",
    """create table if not exists nerve.positions (
    projection text, generation integer, topic text, partition integer,
    next_offset bigint not null, primary key (projection, generation, topic, partition))""",
    """create table if not exists nerve.failures (
    projection text, generation integer, topic text, partition integer, "offset" bigint,
    error text, at timestamptz not null default now())""",
)
# Concurrent "create ... if not exists" can still collide in the catalogs: one at a time.
_SETUP_LOCK = 0x6E657276  # "nerv"
# PostgreSQL's identifiers have at most 63 bytes; a build's schema adds "__g" and a number.
_NAME_MAX = 50


def _generation(conn: psycopg.Connection[Any], table: str, projection: str) -> Generation | None:
    row = conn.execute(
        sql.SQL("select generation, version from nerve.{} where projection = %s for share").format(
            sql.Identifier(table)
        ),
        (projection,),
    ).fetchone()
    return None if row is None else Generation(row[0], row[1])


class PostgresSession(Session):
    def __init__(
        self, dsn: str, projection: str, generation: Generation, schema: str, table: str
    ) -> None:
        self.projection = projection
        self.generation = generation
        self._table = table  # nerve.projections (live) or nerve.builds
        self.conn = psycopg.connect(dsn)
        # Unqualified names in the projection's SQL are the generation's tables.
        self.conn.execute(sql.SQL("set search_path to {}").format(sql.Identifier(schema)))
        self.conn.commit()

    def begin(self) -> Generation | None:
        # The pointer row locked for share: a switch (for update) waits for this transaction.
        found = _generation(self.conn, self._table, self.projection)
        return found if found == self.generation else None

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self.conn.execute(
            "select topic, partition, next_offset from nerve.positions "
            "where projection = %s and generation = %s",
            (self.projection, self.generation.number),
        ).fetchall()
        self.conn.rollback()
        return {(t, p): o for t, p, o in rows}

    def claim(self, topic: str, partition: int) -> int:
        key = (self.projection, self.generation.number, topic, partition)
        # The row made first, so a second writer waits on it even for a partition's first event.
        self.conn.execute(
            "insert into nerve.positions values (%s, %s, %s, %s, 0) on conflict do nothing", key
        )
        row = self.conn.execute(
            "select next_offset from nerve.positions where projection = %s and generation = %s "
            "and topic = %s and partition = %s for update",
            key,
        ).fetchone()
        return 0 if row is None else int(row[0])

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        self.conn.execute(
            "insert into nerve.positions values (%s, %s, %s, %s, %s) on conflict "
            "(projection, generation, topic, partition) "
            "do update set next_offset = excluded.next_offset",
            (self.projection, self.generation.number, topic, partition, next_offset),
        )

    def failed(self, topic: str, partition: int, offset: int, error: str) -> None:
        self.conn.execute(
            "insert into nerve.failures values (%s, %s, %s, %s, %s, %s)",
            (self.projection, self.generation.number, topic, partition, offset, error),
        )

    def close(self) -> None:
        self.conn.close()


class PostgresViews(Views):
    def __init__(self, dsn: str, projection: str) -> None:
        super().__init__(projection)
        if len(projection.encode()) > _NAME_MAX:
            raise ValueError(
                f"projection {projection!r}: names it in PostgreSQL as a schema, so at most "
                f"{_NAME_MAX} bytes"
            )
        self.dsn = dsn
        self._ready = False

    def describe(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return (
            f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/"
            f"{info.get('dbname', '')} schema {self.projection}"
        )

    def _schema(self, generation: int | None = None) -> str:
        return self.projection if generation is None else f"{self.projection}__g{generation}"

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn)
        if not self._ready:
            conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            for statement in _SETUP:
                conn.execute(statement)
            conn.commit()
            self._ready = True
        return conn

    def live(self) -> Generation | None:
        with self._connect() as conn:
            return _generation(conn, "projections", self.projection)

    def building(self) -> Generation | None:
        with self._connect() as conn:
            return _generation(conn, "builds", self.projection)

    @contextmanager
    def rebuilding(self) -> Iterator[None]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:  # a session-level lock
            row = conn.execute(
                "select pg_try_advisory_lock(hashtext(%s))", (f"nerve.rebuild.{self.projection}",)
            ).fetchone()
            if not row or not row[0]:
                raise ViewError(f"another rebuild of {self.describe()} is running")
            yield  # released when the connection closes

    def adopt(self, version: int) -> Generation:
        with self._connect() as conn:
            conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            found = _generation(conn, "projections", self.projection)
            if found is None:
                found = Generation(1, version)
                conn.execute(
                    sql.SQL("create schema if not exists {}").format(sql.Identifier(self._schema()))
                )
                conn.execute(
                    "insert into nerve.projections (projection, generation, version) "
                    "values (%s, %s, %s)",
                    (self.projection, found.number, found.version),
                )
            conn.commit()
            return found

    def session(self, generation: Generation, *, building: bool = False) -> PostgresSession:
        schema = self._schema(generation.number if building else None)
        table = "builds" if building else "projections"
        return PostgresSession(self.dsn, self.projection, generation, schema, table)

    def start_build(self, version: int) -> tuple[Generation, bool]:
        with self._connect() as conn:
            conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            found = _generation(conn, "builds", self.projection)
            self._drop_retired(conn, found.number if found else None)
            if found is not None and found.version == version:
                conn.commit()
                return found, True
            if found is not None:  # a build of another version: its work is of no use
                self._drop(conn, found.number, self._schema(found.number))
                conn.execute("delete from nerve.builds where projection = %s", (self.projection,))
            live = _generation(conn, "projections", self.projection)
            number = max(live.number if live else 0, found.number if found else 0) + 1
            build = Generation(number, version)
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(self._schema(number))))
            conn.execute(
                "insert into nerve.builds (projection, generation, version) values (%s, %s, %s)",
                (self.projection, build.number, build.version),
            )
            conn.commit()
            return build, False

    def _drop_retired(self, conn: psycopg.Connection[Any], keep: int | None) -> None:
        """Generations a process killed between a switch and its drop left behind."""
        prefix = f"{self.projection}__g"
        rows = conn.execute(
            "select nspname from pg_namespace where left(nspname, %s) = %s",
            (len(prefix), prefix),
        ).fetchall()
        for (schema,) in rows:
            number = schema[len(prefix) :]
            if number.isdigit() and int(number) != keep:
                self._drop(conn, int(number), schema)

    def _drop(self, conn: psycopg.Connection[Any], number: int, schema: str) -> None:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        for table in ("positions", "failures"):
            conn.execute(
                sql.SQL("delete from nerve.{} where projection = %s and generation = %s").format(
                    sql.Identifier(table)
                ),
                (self.projection, number),
            )

    def switch(self, build: Generation) -> Generation | None:
        with self._connect() as conn:
            found = conn.execute(
                "select generation, version from nerve.builds where projection = %s for update",
                (self.projection,),
            ).fetchone()
            if found is None or Generation(found[0], found[1]) != build:
                raise ViewError(f"the build of {self.describe()} was replaced by another rebuild")
            row = conn.execute(
                "select generation, version from nerve.projections where projection = %s "
                "for update",
                (self.projection,),
            ).fetchone()
            old = None if row is None else Generation(row[0], row[1])
            live = sql.Identifier(self._schema())
            if old is not None:
                retired = sql.Identifier(self._schema(old.number))
                conn.execute(sql.SQL("alter schema {} rename to {}").format(live, retired))
            conn.execute(
                sql.SQL("alter schema {} rename to {}").format(
                    sql.Identifier(self._schema(build.number)), live
                )
            )
            conn.execute(
                "insert into nerve.projections (projection, generation, version) "
                "values (%s, %s, %s) on conflict (projection) do update set "
                "generation = excluded.generation, version = excluded.version, since = now()",
                (self.projection, build.number, build.version),
            )
            conn.execute("delete from nerve.builds where projection = %s", (self.projection,))
            conn.commit()
            if old is not None:  # after the switch: readers of the old one are not held up
                self._drop(conn, old.number, self._schema(old.number))
                conn.commit()
            return old

    def failures(self) -> list[tuple[str, int, int, str]]:
        with self._connect() as conn:
            rows = conn.execute(
                'select f.topic, f.partition, f."offset", f.error from nerve.failures f '
                "join nerve.projections p using (projection, generation) "
                "where projection = %s order by f.at",
                (self.projection,),
            ).fetchall()
            return [(t, p, o, e) for t, p, o, e in rows]
