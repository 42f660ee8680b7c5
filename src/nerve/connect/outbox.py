"""The outbox pattern: a service that owns a database changes its state and records the event
saying so in the same transaction; Debezium's outbox event router then publishes each outbox
row as that event, a CloudEvent like any a nerve service emits. Either both happen or neither:
no event for a rolled-back change, no change without its event.

::

    with psycopg.connect(dsn) as conn:          # one transaction
        conn.execute("UPDATE stock SET quantity = quantity - 1 WHERE sku = %s", (sku,))
        outbox.write(conn, StockReserved(sku=sku, order_id=order), source="/shop/inventory")

``connector_config`` gives the Debezium connector that publishes the table: each row goes to
the event's topic, keyed by the event's key, its JSON data as the value and its envelope in
``ce_*`` headers (binary content mode), so consumers read it with the event class itself.
Works with psycopg 3 connections, and with SQLAlchemy connections (``write`` runs through their
DBAPI driver's placeholder style, ``%s`` for psycopg).
"""

from __future__ import annotations

from typing import Any

from nerve.service.events import Event, Meta

TABLE = "outbox"

# One column per CloudEvents attribute the router copies into a header of the same name.
_HEADERS = (
    ("id", "ce_id"),
    ("ce_specversion", "ce_specversion"),
    ("ce_source", "ce_source"),
    ("ce_type", "ce_type"),
    ("ce_time", "ce_time"),
    ("ce_correlationid", "ce_correlationid"),
    ("content_type", "content-type"),
)


def ddl(table: str = TABLE) -> str:
    """The outbox table. Rows can be deleted right after they are written (the connector reads
    the WAL, not the table); keeping them costs only space."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " id text PRIMARY KEY,"
        " topic text NOT NULL,"
        " aggregateid text,"
        " payload text NOT NULL,"
        " ce_specversion text NOT NULL DEFAULT '1.0',"
        " ce_source text NOT NULL,"
        " ce_type text NOT NULL,"
        " ce_time text NOT NULL,"
        " ce_correlationid text NOT NULL,"
        " content_type text NOT NULL DEFAULT 'application/json')"
    )


def write(conn: Any, event: Event, *, source: str, table: str = TABLE) -> Meta:
    """Insert ``event`` into the outbox on ``conn``, inside the caller's transaction (nothing is
    committed here). Returns its envelope: the id consumers will see, its correlation id (the
    event's own id when it starts a chain, as a service's first event does)."""
    meta = event.meta
    meta.source = meta.source or source
    meta.type = meta.type or event.event_type
    correlation = meta.correlation_id or meta.id
    key = event.record_key()
    row = (
        meta.id,
        event.topic,
        None if key is None else key.decode(),
        event.model_dump_json(),
        meta.source,
        meta.type,
        meta.time,
        correlation,
    )
    sql = (
        f"INSERT INTO {table} (id, topic, aggregateid, payload, ce_source, ce_type, ce_time,"
        " ce_correlationid) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    if hasattr(conn, "exec_driver_sql"):  # a SQLAlchemy Connection
        conn.exec_driver_sql(sql, row)
    else:
        conn.execute(sql, row)
    meta.correlation_id = correlation
    return meta


def connector_config(table: str = TABLE, schema: str = "public") -> dict[str, str]:
    """The settings a Debezium source connector adds to publish ``table`` through the outbox
    event router (merge them with the database settings)."""
    placement = ",".join(f"{column}:header:{header}" for column, header in _HEADERS)
    return {
        "table.include.list": f"{schema}.{table}",
        "transforms": "outbox",
        "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.route.by.field": "topic",
        "transforms.outbox.route.topic.replacement": "${routedByValue}",
        "transforms.outbox.table.field.event.id": "id",
        "transforms.outbox.table.field.event.key": "aggregateid",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.table.fields.additional.placement": placement,
        # The payload column holds the event's JSON text: written as is, not as a JSON string.
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    }
