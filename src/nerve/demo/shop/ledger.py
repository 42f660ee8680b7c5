"""What the shop's topics hold, read back (read_committed) and folded apart from the services:
the history the ``--check`` holds the services and read models to. Counting every event (not
the latest per key) is what finds an order placed twice, a payment without an order, or a
reorder requested twice."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from nerve.demo.shop import events as ev
from nerve.demo.shop.reorder import LEVEL

EVENTS = (ev.OrderPlaced, ev.OrderPaid, ev.OrderCancelled, ev.StockAdded, ev.StockReserved,
          ev.StockShort, ev.StockReleased, ev.PaymentCharged, ev.PaymentDeclined,
          ev.PaymentPending, ev.PaymentVoided, ev.PaymentRefunded, ev.OrderShipped,
          ev.ReorderRequested)  # fmt: skip
TOPICS = [t.topic for t in EVENTS]
PARTITIONS = 4
_VERSION = b"ce_nerveversion"


@dataclass
class Ledger:
    """Every event of the shop's event topics, by topic: (key, version, body)."""

    records: dict[str, list[tuple[str, int, dict[str, Any]]]] = field(
        default_factory=lambda: {t: [] for t in TOPICS}
    )

    def add(self, topic: str, key: bytes | None, headers: Any, value: bytes) -> None:
        version = 0
        for name, raw in headers or ():
            if name.encode() == _VERSION and raw:
                version = int(raw)
        body = json.loads(value)
        self.records[topic].append(((key or b"").decode(), version, body))

    def bodies(self, event_type: type[ev.Event]) -> list[dict[str, Any]]:
        return [body for _, _, body in self.records[event_type.topic]]

    def count(self, event_type: type[ev.Event], by: str = "order_id") -> Counter[str]:
        return Counter(body[by] for body in self.bodies(event_type))

    # -- folds -------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        """order id -> placed, paid or cancelled (the furthest of its events)."""
        out = {body["order_id"]: "placed" for body in self.bodies(ev.OrderPlaced)}
        for body in self.bodies(ev.OrderPaid):
            out[body["order_id"]] = "paid"
        for body in self.bodies(ev.OrderCancelled):
            out[body["order_id"]] = "cancelled"
        return out

    def by_customer(self) -> dict[str, tuple[int, int, int, int]]:
        """customer -> (placed, paid, cancelled, spent), as orders_by_customer counts."""
        rows: dict[str, list[int]] = {}
        for column, event_type in ((0, ev.OrderPlaced), (1, ev.OrderPaid), (2, ev.OrderCancelled)):
            for body in self.bodies(event_type):
                row = rows.setdefault(body["customer"], [0, 0, 0, 0])
                row[column] += 1
                if event_type is ev.OrderPaid:
                    row[3] += body["amount"]
        return {c: (r[0], r[1], r[2], r[3]) for c, r in rows.items()}

    def failures(self) -> dict[str, tuple[str, str]]:
        return {b["order_id"]: (b["customer"], b["reason"]) for b in self.bodies(ev.OrderCancelled)}

    def stock(self) -> tuple[dict[str, tuple[int, int]], set[tuple[str, str]], list[str]]:
        """Each SKU's events in version order, folded: sku -> (available, version); the
        reorders they call for (a reservation taking stock below the level: (sku, order id));
        and what is wrong with them (a gap or repeat of versions, stock below zero, an
        event's ``available`` unlike the fold)."""
        by_sku: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        for event_type in (ev.StockAdded, ev.StockReserved, ev.StockShort, ev.StockReleased):
            for key, version, body in self.records[event_type.topic]:
                by_sku.setdefault(key, []).append((version, event_type.__name__, body))
        ends: dict[str, tuple[int, int]] = {}
        reorders: set[tuple[str, str]] = set()
        wrong: list[str] = []
        for sku, history in sorted(by_sku.items()):
            history.sort(key=lambda item: item[0])
            versions = [v for v, _, _ in history]
            if versions != list(range(1, len(history) + 1)):
                wrong.append(f"stock {sku}: versions {versions}, not 1..{len(history)} once each")
            available = 0
            for version, kind, body in history:
                before = available
                if kind == "StockAdded" or kind == "StockReleased":
                    available += body["quantity"]
                elif kind == "StockReserved":
                    available -= body["quantity"]
                if available < 0:
                    wrong.append(f"stock {sku} below zero at version {version}: {available}")
                if body["available"] != available:
                    wrong.append(f"stock {sku} v{version}: says {body['available']} left, the "
                                 f"fold {available}")  # fmt: skip
                if kind == "StockReserved" and available < LEVEL <= before:
                    reorders.add((sku, body["order_id"]))
            ends[sku] = (available, len(history))
        return ends, reorders, wrong


def read(bootstrap: str, timeout: float = 30.0) -> Ledger:
    """Every committed event of the shop's topics up to their ends now."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"nerve-demo-shop-ledger-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
            "log_level": 0,
        }
    )
    ledger = Ledger()
    remaining = {(t, p) for t in TOPICS for p in range(PARTITIONS)}
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in remaining])
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the shop's topics: {len(remaining)} partitions left")
            for message in consumer.consume(10_000, 0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard((message.topic(), message.partition()))
                        continue
                    if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        remaining.discard((message.topic(), message.partition()))
                        continue  # nothing of that kind happened (yet)
                    raise RuntimeError(f"reading {message.topic()}: {error}")
                value = message.value()
                if value is not None:
                    ledger.add(message.topic() or "", message.key(), message.headers(), value)
    finally:
        consumer.close()
    return ledger
