"""The outbox: a state change and its event in one database transaction, published by
Debezium's outbox event router on nerve, read by a nerve service as an ordinary event."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from nerve.connect import outbox
from nerve.service import Event, Service
from tests._connect import await_status
from tests._postgres import PostgresProcess
from tests.connect.conftest import ConnectCluster
from tests.connect.test_change_events import running, wait_for
from tests.connect.test_debezium import debezium_config, drop_slot


def test_outbox_rows_arrive_as_cloudevents_and_rolled_back_ones_never(
    connect_on_nerve: ConnectCluster, postgres: PostgresProcess
) -> None:
    worker, name = connect_on_nerve.worker, f"dbz{uuid.uuid4().hex[:10]}"
    table, stock = f"outbox_{name}", f"stock_{name}"

    class StockReserved(Event, topic=f"{name}.stock-reserved", key="sku"):
        sku: str
        order_id: str
        left: int

    postgres.execute(outbox.ddl(table))
    postgres.execute(f"CREATE TABLE {stock} (sku text PRIMARY KEY, quantity int NOT NULL)")
    postgres.execute(f"INSERT INTO {stock} VALUES ('apple', 10), ('pear', 1)")
    config = {
        **debezium_config(postgres, table, name, **{"snapshot.mode": "no_data"}),
        **outbox.connector_config(table),
    }
    worker.request("PUT", f"/connectors/{name}/config", config)
    await_status(worker, name)

    def reserve(sku: str, order: str, *, fail: bool = False) -> str:
        with psycopg.connect(postgres.dsn) as conn:  # commits at the end, rolls back on error
            (left,) = conn.execute(
                f"UPDATE {stock} SET quantity = quantity - 1 WHERE sku = %s RETURNING quantity",
                (sku,),
            ).fetchone()  # type: ignore[misc]
            meta = outbox.write(
                conn,
                StockReserved(sku=sku, order_id=order, left=left),
                source="/shop/stock",
                table=table,
            )
            if fail:
                raise RuntimeError("the order was cancelled before it committed")
        return meta.id

    seen: list[StockReserved] = []
    service = Service(f"shipping-{name}")

    @service.on(StockReserved)
    def reserved(event: StockReserved) -> None:
        seen.append(event)

    try:
        with running(service, connect_on_nerve.bootstrap):
            first = reserve("apple", "o1")
            with pytest.raises(RuntimeError):
                reserve("pear", "o2", fail=True)
            second = reserve("pear", "o3")
            wait_for(seen, 2)
            time.sleep(1)
        assert [(e.sku, e.order_id, e.left) for e in seen] == [
            ("apple", "o1", 9),
            ("pear", "o3", 0),
        ]
        assert postgres.execute(f"SELECT quantity FROM {stock} ORDER BY sku") == [(9,), (0,)]
        event = seen[0]
        assert event.meta.id == first and seen[1].meta.id == second
        assert event.meta.source == "/shop/stock" and event.meta.type == StockReserved.event_type
        assert event.meta.correlation_id == first  # it starts its chain
        assert event.meta.key == b"apple" and event.meta.topic == StockReserved.topic
        assert event.meta.datacontenttype == "application/json"
    finally:
        worker.request("DELETE", f"/connectors/{name}")
        drop_slot(postgres, f"{name}_slot")
