"""Debezium's change events as typed events: ``ChangeEvent[Row]`` reads the envelope Debezium
writes with Kafka Connect's JSON converter (``before``, ``after``, ``op``, ``source``,
``ts_ms``), with or without its schema (``schemas.enable``), the rows as the given model.

A service binds one to the connector's topic like any event::

    class Customer(BaseModel):
        id: int
        name: str

    class CustomerChanged(ChangeEvent[Customer], topic="shop.public.customers"):
        pass

    @service.on(CustomerChanged)
    def changed(event: CustomerChanged) -> None:
        if event.op == "d": ...
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from nerve.service.events import Event

Row = TypeVar("Row", bound=BaseModel)

Op = Literal["r", "c", "u", "d", "t", "m"]
"""Debezium's operations: read (snapshot), create, update, delete, truncate, message."""


class Source(BaseModel):
    """Where a change comes from: Debezium's ``source`` block. The fields every connector
    writes are typed; the rest of each connector's own (PostgreSQL's ``lsn``, ``txId``,
    ``xmin``; MySQL's ``file``, ``pos``, ...) are kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow")

    version: str | None = None
    connector: str
    name: str  # the connector's topic.prefix
    ts_ms: int  # when the change was made in the database
    snapshot: str | None = None  # "true", "first", "last", "incremental"; "false" when streaming
    db: str
    schema_: str | None = None
    table: str | None = None
    # PostgreSQL's position: the WAL position of the change and its transaction.
    lsn: int | None = None
    txId: int | None = None  # Debezium's name

    @model_validator(mode="before")
    @classmethod
    def _schema_field(cls, data: Any) -> Any:
        # "schema" would shadow BaseModel.schema; Debezium's name is read into schema_.
        if isinstance(data, dict) and "schema" in data and "schema_" not in data:
            data = {**data, "schema_": data["schema"]}
            del data["schema"]
        return data

    @property
    def position(self) -> tuple[Any, ...]:
        """The change's place in the database's log, comparable between changes of one
        database (PostgreSQL: the LSN; another connector: its own fields, in order)."""
        if self.lsn is not None:
            return (self.lsn,)
        return tuple((self.model_extra or {}).values())


class ChangeEvent(Event, Generic[Row]):
    """One row change as Debezium records it.

    ``before`` is the row before the change (``None`` for inserts and snapshot reads, and for
    updates unless the table's ``REPLICA IDENTITY`` is ``FULL``), ``after`` the row after it
    (``None`` for deletes). A tombstone (the record with no value Debezium writes after a delete,
    for compaction) is not an event: handlers of a change event never see one.
    """

    skips_tombstones: ClassVar[bool] = True

    before: Row | None = None
    after: Row | None = None
    op: Op
    source: Source
    ts_ms: int | None = None  # when the connector processed the change
    transaction: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # The JSON converter with schemas.enable=true writes {"schema": ..., "payload": ...}.
        if isinstance(data, dict) and "payload" in data and "schema" in data:
            return data["payload"]
        return data

    @property
    def row(self) -> Row:
        """The row as it is now (after), or as it was when deleted (before)."""
        row = self.after if self.after is not None else self.before
        if row is None:
            raise ValueError(f"a {self.op!r} change without a row")
        return row

    @property
    def deleted(self) -> bool:
        return self.op == "d"

    @property
    def snapshot(self) -> bool:
        """Read by the initial snapshot rather than streamed from the log."""
        return self.op == "r"

    @property
    def key(self) -> dict[str, Any]:
        """The row's primary key, from the record's key (Debezium's key struct)."""
        raw = self.meta.key
        if not raw:
            return {}
        key = json.loads(raw)
        if isinstance(key, dict) and "payload" in key and "schema" in key:
            key = key["payload"]
        return key if isinstance(key, dict) else {"key": key}
