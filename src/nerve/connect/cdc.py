"""Change data capture from PostgreSQL without a JVM: logical decoding (wal2json) into Kafka,
records in Debezium's envelope so consumers (``ChangeEvent``) switch between the two freely.
Values are as wal2json writes them; ``numeric`` as a decimal string (as Debezium's
``decimal.handling.mode=string``).

How it keeps its promises:

- **No gap, no overlap between snapshot and stream.** The slot is created on a replication
  connection with an exported snapshot; the tables are read in that snapshot, so every change
  committed before the slot's consistent point is in the snapshot and every later one comes from
  the slot. The whole snapshot and a marker saying it is done are one Kafka transaction.
- **Whole database transactions, batched into Kafka transactions.** Consecutive database
  transactions (up to ``batch_changes`` changes or ``batch_ms``, whichever comes first; a
  database transaction is never split) and the commit LSN of the last of them, recorded in
  ``<prefix>.cdc-offsets`` (compacted), are committed as one Kafka transaction: one commit per
  batch, not per database transaction, is where the speed comes from. ``batch_changes=0``
  gives each database transaction its own Kafka transaction.
- **Nothing lost, nothing twice, across a SIGKILL at any moment.** The slot is read over the
  streaming replication protocol (``START_REPLICATION``, as ``pg_recvlogical``) and advanced by
  the status updates sent only after the Kafka transaction committed, and only to the end of the
  batch's last commit record; at start the
  last committed LSN is read back from the offsets topic and every database transaction at or
  below it is skipped, so a batch committed to Kafka but not yet acknowledged to the slot is not
  published again, and a batch killed before its commit is aborted and published anew.
- **An idle slot does not pin WAL.** With no Kafka transaction open, the slot is advanced to
  the position of the server's last keepalive (everything below it was sent and handled).
"""

from __future__ import annotations

import json
import logging
import select
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

log = logging.getLogger("nerve.connect.cdc")

# wal2json's actions and Debezium's operations; a TRUNCATE is one "t" record per table, with no
# key and no row (Debezium writes them when skipped.operations does not name "t").
OPS = {"I": "c", "U": "u", "D": "d", "T": "t"}


# The streaming replication protocol's messages: XLogData ("w": start, end, clock), keepalive
# ("k": end, clock, reply requested) and the standby status update ("r": written, flushed,
# applied, clock, reply requested); clocks in microseconds since 2000-01-01.
_XLOGDATA = struct.Struct(">QQQ")
_KEEPALIVE = struct.Struct(">QQB")
_STATUS = struct.Struct(">QQQqB")
_PG_EPOCH = 946_684_800
_STATUS_INTERVAL_S = 10.0  # a status update at least this often (wal_sender_timeout is 60 s)


def lsn_int(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _exact(value: Any) -> bool:
    """Whether orjson read this value without a float: a fraction, an exponent or an integer
    beyond 64 bits is a float there, where the stdlib's decoder with Decimal keeps every digit."""
    if type(value) is float:
        return False
    if type(value) is dict:
        return all(_exact(v) for v in value.values())
    if type(value) is list:
        return all(_exact(v) for v in value)
    return True


def _loads_row(text: str | bytes) -> dict[str, Any]:
    """A snapshot row (``row_to_json``): orjson (several times the stdlib's speed), read again
    with Decimal only when a value has a float in it, so numeric keeps its digits."""
    row: dict[str, Any] = orjson.loads(text)
    if all(_exact(v) for v in row.values()):
        return row
    return json.loads(text, parse_float=Decimal)


def _loads_change(text: str | bytes) -> dict[str, Any]:
    """A wal2json (format 2) record, as ``_loads_row``: only column values can hold numbers."""
    change: dict[str, Any] = orjson.loads(text)
    for part in ("columns", "identity"):
        for column in change.get(part) or ():
            if not _exact(column.get("value")):
                return json.loads(text, parse_float=Decimal)
    return change


def _dumps(value: Any) -> bytes:
    """orjson, Decimal as its string; the stdlib for what orjson cannot write (an integer beyond
    64 bits)."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, default=str).encode()


@dataclass
class CaptureConfig:
    dsn: str
    bootstrap_servers: str
    prefix: str  # topics are <prefix>.<schema>.<table>, as Debezium's topic.prefix
    tables: list[str]  # schema.table
    slot: str = ""
    poll_interval_s: float = 0.05  # how long a quiet stream is waited on before checking stop()
    # A Kafka transaction is committed once it holds this many changes or is this old (checked
    # after each whole database transaction), and at the end of each look; 0: one per database
    # transaction.
    batch_changes: int = 10_000
    batch_ms: float = 100.0
    kafka: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slot = self.slot or f"nerve_cdc_{self.prefix}".replace(".", "_").replace("-", "_")


@dataclass
class _Batch:
    """The Kafka transaction being filled: how many changes, since when, up to which commit."""

    open: bool = False
    changes: int = 0
    started: float = 0.0
    last: int = 0

    def begin(self) -> None:
        self.open, self.changes, self.started = True, 0, time.monotonic()

    def add(self, changes: int, commit: int) -> None:
        self.changes += changes
        self.last = commit

    def full(self, max_changes: int, max_ms: float) -> bool:
        return self.changes >= max_changes or (time.monotonic() - self.started) * 1000 >= max_ms


class PostgresCapture:
    """Runs the capture: ``run()`` until ``stop()`` (or for ``duration_s``)."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.offsets_topic = f"{config.prefix}.cdc-offsets"
        self._stopping = False
        self.published = 0

    # -- Kafka side -------------------------------------------------------------------------

    def _producer(self) -> Any:
        from confluent_kafka import Producer

        producer = Producer(
            {
                "bootstrap.servers": self.config.bootstrap_servers,
                "transactional.id": f"nerve-cdc-{self.config.slot}",
                "linger.ms": 5,
                "log_level": 3,
                **self.config.kafka,
            }
        )
        producer.init_transactions(60)
        return producer

    def _client_config(self) -> dict[str, Any]:
        """What the admin client and the offsets reader connect with (security settings too)."""
        return {
            "bootstrap.servers": self.config.bootstrap_servers,
            "log_level": 0,
            **self.config.kafka,
        }

    def _ensure_offsets_topic(self) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self._client_config())
        futures = admin.create_topics(
            [NewTopic(self.offsets_topic, 1, config={"cleanup.policy": "compact"})]
        )
        for future in futures.values():
            try:
                future.result(30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise

    def committed(self) -> dict[str, Any] | None:
        """The last position committed to Kafka for this slot (None: nothing yet), read to the
        end of the offsets topic (read_committed: the killed capture's open transaction was
        aborted by this one's init_transactions)."""
        from nerve.service.topic_reader import read_to_end

        records = read_to_end(
            self._client_config(),
            self.offsets_topic,
            timeout_s=60,
        )
        last: dict[str, Any] | None = None
        for msg in records or ():
            if msg.key() == self.config.slot.encode() and msg.value():
                last = json.loads(msg.value() or b"null")
        return last

    def _offset_record(self, producer: Any, lsn: int) -> None:
        """The commit LSN of what this transaction publishes (first: the snapshot's point)."""
        value = {"lsn": lsn, "lsn_text": lsn_text(lsn), "snapshot_done": True}
        producer.produce(self.offsets_topic, json.dumps(value), key=self.config.slot)

    # -- PostgreSQL side ---------------------------------------------------------------------

    def _announce(self) -> None:
        """In nerve's catalog as ``cdc:<prefix>`` (best effort, as a service announces itself):
        the lineage then shows the database, its topics and the services reading them."""
        from nerve.connect.catalog import announce_capture

        topics = [f"{self.config.prefix}.{qualified}" for qualified in self.config.tables]
        try:
            announce_capture(self._client_config(), self.config.prefix, self.config.dsn, topics)
        except Exception as exc:  # the catalog is for people; the capture goes on without it
            log.warning("could not announce the capture in the catalog: %s", exc)

    def _slot_exists(self, conn: Any) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.config.slot,)
        ).fetchone()
        return row is not None

    def _snapshot(self, producer: Any) -> int:
        """Create the slot with an exported snapshot and publish the tables as they were at its
        consistent point, in one Kafka transaction with the marker that the snapshot is done;
        returns that point."""
        import psycopg

        repl = psycopg.connect(self.config.dsn, autocommit=True, replication="database")
        try:
            # A replication command: the simple query protocol (libpq's PQexec), not psycopg's.
            command = f"CREATE_REPLICATION_SLOT {self.config.slot} LOGICAL wal2json EXPORT_SNAPSHOT"
            result = repl.pgconn.exec_(command.encode())
            if result.status != 2:  # PGRES_TUPLES_OK
                raise RuntimeError(
                    f"cannot create slot {self.config.slot}: "
                    f"{(result.error_message or b'').decode().strip()}"
                )
            consistent = lsn_int((result.get_value(0, 1) or b"").decode())
            snapshot_name = (result.get_value(0, 2) or b"").decode()
            with psycopg.connect(self.config.dsn) as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
                producer.begin_transaction()
                for qualified in self.config.tables:
                    schema, _, table = qualified.partition(".")
                    keys = self._primary_key(conn, schema, table)
                    cur = conn.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t')
                    for (text,) in cur:
                        row = _loads_row(text)
                        self._produce(
                            producer,
                            schema,
                            table,
                            "r",
                            None,
                            row,
                            keys,
                            lsn=consistent,
                            xid=None,
                            ts_ms=int(time.time() * 1000),
                            snapshot="true",
                        )
                self._offset_record(producer, consistent)
                producer.commit_transaction(60)
                conn.rollback()
        finally:
            repl.close()
        log.info("snapshot of %s done at %s", ", ".join(self.config.tables), lsn_text(consistent))
        return consistent

    @staticmethod
    def _primary_key(conn: Any, schema: str, table: str) -> list[str]:
        rows = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attnum",
            (f'"{schema}"."{table}"',),
        ).fetchall()
        return [name for (name,) in rows]

    def _produce(
        self,
        producer: Any,
        schema: str,
        table: str,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        keys: list[str],
        *,
        lsn: int,
        xid: int | None,
        ts_ms: int,
        snapshot: str = "false",
    ) -> None:
        row = after if after is not None else before or {}
        key = {k: row.get(k) for k in keys} if keys and op != "t" else None
        value = {
            "before": before,
            "after": after,
            "source": {
                "version": "nerve",
                "connector": "postgresql",
                "name": self.config.prefix,
                "ts_ms": ts_ms,
                "snapshot": snapshot,
                "db": "",
                "schema": schema,
                "table": table,
                "txId": xid,
                "lsn": lsn,
            },
            "op": op,
            "ts_ms": int(time.time() * 1000),
        }
        producer.produce(
            f"{self.config.prefix}.{schema}.{table}",
            _dumps(value),
            key=None if key is None else _dumps(key),
        )
        self.published += 1
        producer.poll(0)

    # -- streaming ----------------------------------------------------------------------------

    def _start_replication(self, dsn: str) -> Any:
        """A replication connection streaming the slot (wal2json, format 2). Over the streaming
        protocol PostgreSQL decodes the WAL once, as it is flushed, and sends each change as it
        decodes it; polling with pg_logical_slot_peek_changes decoded again from the slot's
        restart point (up to 15 s of WAL behind) at every look and waited a poll interval."""
        import psycopg
        from psycopg import pq

        options = {
            "format-version": "2",
            "include-xids": "1",
            "include-lsn": "1",
            "include-timestamp": "1",
            "include-pk": "1",
            "add-tables": ",".join(self.config.tables),
        }
        listed = ", ".join(f'"{k}" ' + "'" + v.replace("'", "''") + "'" for k, v in options.items())
        command = f"START_REPLICATION SLOT {self.config.slot} LOGICAL 0/0 ({listed})".encode()
        deadline = time.monotonic() + 30
        while True:
            repl = psycopg.connect(dsn, autocommit=True, replication="database")
            result = repl.pgconn.exec_(command)
            if result.status == pq.ExecStatus.COPY_BOTH:
                return repl
            error = (result.error_message or b"").decode().strip()
            repl.close()
            # A capture just killed: its WAL sender holds the slot until it notices.
            if "is active" not in error or time.monotonic() > deadline:
                raise RuntimeError(f"cannot stream slot {self.config.slot}: {error}")
            time.sleep(0.2)

    @staticmethod
    def _message(pgconn: Any, timeout_s: float) -> bytes | None:
        """The next message of the replication stream, or None when none came in time."""
        size, data = pgconn.get_copy_data(1)
        if size == 0:
            pgconn.consume_input()
            size, data = pgconn.get_copy_data(1)
            if size == 0 and timeout_s > 0:
                select.select([pgconn.socket], [], [], timeout_s)
                pgconn.consume_input()
                size, data = pgconn.get_copy_data(1)
        if size == 0:
            return None
        if size < 0:
            error = (pgconn.error_message or b"").decode().strip()
            raise RuntimeError(f"replication stream ended: {error or 'by the server'}")
        return bytes(data)

    @staticmethod
    def _feedback(pgconn: Any, flushed: int) -> None:
        """A standby status update: the slot may be advanced to ``flushed`` (nothing below it is
        still wanted), which is how an idle slot stops pinning WAL too."""
        clock = int((time.time() - _PG_EPOCH) * 1_000_000)
        pgconn.put_copy_data(b"r" + _STATUS.pack(flushed, flushed, flushed, clock, 0))
        pgconn.flush()

    def run(self, duration_s: float | None = None) -> None:
        import psycopg

        self._ensure_offsets_topic()
        producer = self._producer()
        done = self.committed()
        with psycopg.connect(self.config.dsn, autocommit=True) as conn:
            if done is None:
                if self._slot_exists(conn):  # a snapshot that never committed: start over
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (self.config.slot,))
                # The snapshot's point as committed, not read back from the offsets topic: that
                # read took half a second in which changes committed meanwhile waited.
                last = self._snapshot(producer)
            else:
                last = int(done["lsn"])
            conn.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn) FROM pg_replication_slots"
                " WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
                (self.config.slot, lsn_text(last), self.config.slot, lsn_text(last)),
            )
            self._announce()
            repl = self._start_replication(self.config.dsn)
            try:
                self._stream(producer, conn, repl.pgconn, last, duration_s)
            finally:
                repl.close()
        producer.flush(30)

    def _stream(
        self, producer: Any, conn: Any, pgconn: Any, last: int, duration_s: float | None
    ) -> None:
        """Publishes the stream until stopped. ``seen`` is the WAL position below which every
        commit received is published or needs nothing (the end of the last commit record, or a
        keepalive's position); it is reported to the slot only while no Kafka transaction is
        open, so the slot keeps what Kafka does not have."""
        started = time.monotonic()
        keys_of: dict[tuple[str, str], list[str]] = {}
        txn: list[dict[str, Any]] = []
        batch = _Batch()
        seen = reported = 0
        caught_up = False
        reported_at = time.monotonic()
        while not self._stopping:
            if duration_s is not None and time.monotonic() - started > duration_s:
                break
            # Between database transactions with a batch open, nothing waiting commits it, once
            # the server is caught up: a keepalive came after the last change (the WAL sender
            # sends one when it waits for WAL while unacknowledged). Without that, a backlog
            # read faster than it is decoded would be cut into batches wherever the socket ran
            # dry for a moment.
            between = batch.open and not txn
            idle = between and caught_up
            message = self._message(pgconn, 0.0 if idle else self.config.poll_interval_s)
            if message is None:
                if idle or (
                    between and batch.full(self.config.batch_changes, self.config.batch_ms)
                ):
                    self._commit(producer, batch)
                if not batch.open and (
                    seen > reported or time.monotonic() - reported_at > _STATUS_INTERVAL_S
                ):
                    self._feedback(pgconn, seen)
                    reported, reported_at = seen, time.monotonic()
                continue
            kind = message[:1]
            if kind == b"k":  # keepalive: the server has sent everything below this position
                position, _, reply = _KEEPALIVE.unpack_from(message, 1)
                seen = max(seen, position)
                caught_up = True
                if reply:
                    self._feedback(pgconn, seen if not batch.open else reported)
                    reported_at = time.monotonic()
                    reported = seen if not batch.open else reported
                continue
            if kind != b"w":
                continue
            caught_up = False
            # XLogData: its start is the end of the commit record for a commit.
            position = _XLOGDATA.unpack_from(message, 1)[0]
            change = _loads_change(message[_XLOGDATA.size + 1 :])
            action = change["action"]
            if action == "B":
                txn = []
            elif action in OPS:
                txn.append(change)
            elif action == "C":
                commit = lsn_int(change["lsn"])
                # An empty transaction (only other tables' changes) needs no Kafka transaction.
                if commit > last and txn:
                    if not batch.open:
                        producer.begin_transaction()
                        batch.begin()
                    self._publish(producer, conn, txn, commit, change, keys_of)
                    batch.add(len(txn), commit)
                    last = commit
                seen = max(seen, position)
                txn = []
                if batch.open and batch.full(self.config.batch_changes, self.config.batch_ms):
                    self._commit(producer, batch)
                    self._feedback(pgconn, seen)
                    reported, reported_at = seen, time.monotonic()
                elif not batch.open and time.monotonic() - reported_at > _STATUS_INTERVAL_S:
                    # A stream that never pauses (other tables' transactions only) still moves
                    # the slot on.
                    self._feedback(pgconn, seen)
                    reported, reported_at = seen, time.monotonic()
        if batch.open:  # whole database transactions only: publish what is in it
            self._commit(producer, batch)
            self._feedback(pgconn, seen)

    @staticmethod
    def _columns(items: Iterable[dict[str, Any]] | None) -> dict[str, Any] | None:
        if items is None:
            return None
        return {c["name"]: c["value"] for c in items}

    def _publish(
        self,
        producer: Any,
        conn: Any,
        txn: list[dict[str, Any]],
        commit: int,
        commit_change: dict[str, Any],
        keys_of: dict[tuple[str, str], list[str]],
    ) -> None:
        """Produces one database transaction's changes into the open Kafka transaction."""
        ts_ms = int(time.time() * 1000)
        for change in txn:
            schema, table = change["schema"], change["table"]
            keys = keys_of.get((schema, table))
            if keys is None:
                keys = keys_of[schema, table] = [p["name"] for p in change.get("pk", [])] or (
                    self._primary_key(conn, schema, table)
                )
            op = OPS[change["action"]]
            after = self._columns(change.get("columns")) if op not in ("d", "t") else None
            before = self._columns(change.get("identity"))
            if op == "u" and before is not None and set(before) <= set(keys):
                # The old key only (REPLICA IDENTITY DEFAULT): no before image, as Debezium.
                before = None
            self._produce(
                producer,
                schema,
                table,
                op,
                before,
                after,
                keys,
                lsn=lsn_int(change["lsn"]) if "lsn" in change else commit,
                xid=change.get("xid") or commit_change.get("xid"),
                ts_ms=ts_ms,
            )

    def _commit(self, producer: Any, batch: _Batch) -> None:
        """Commits the batch with the commit LSN of its last database transaction."""
        self._offset_record(producer, batch.last)
        producer.commit_transaction(60)
        batch.open = False

    def stop(self) -> None:
        self._stopping = True
