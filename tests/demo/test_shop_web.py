"""The shop's web front (issue 16 item 2): HTTP handlers send commands to the orders aggregate
of a real ``nerve run`` replica and answer with its decision, read back over Kafka; the order
is then read from the projection's SQLite read model."""

from __future__ import annotations

import os
import time
from pathlib import Path

from starlette.testclient import TestClient

from nerve.demo.process import ServiceProcess
from nerve.demo.shop.web import make_app
from nerve.service.config import RunConfig
from nerve.testing import Platform

SHOP = Path(__file__).resolve().parents[2] / "src" / "nerve" / "demo" / "shop"
ORDER = {"customer": "ada", "sku": "sku-1", "quantity": 2, "total": 1_800, "card": "4242"}


def test_web_handlers_place_orders_and_read_them_back(tmp_path: Path) -> None:
    env = dict(os.environ, NERVE_DEMO_SHOP_DATA=str(tmp_path))
    with Platform(tmp_path / "platform") as platform:
        orders = ServiceProcess(
            "orders", SHOP / "orders.py", platform, tmp_path, tmp_path / "state", env
        )
        orders.start()
        try:
            config = RunConfig(
                bootstrap_servers=platform.bootstrap, registry_url=platform.registry_url
            )
            with TestClient(make_app(config, tmp_path)) as http:
                placed = http.post("/orders/o-1", json=ORDER)
                assert placed.status_code == 201, (placed.text, orders.log_tail())
                assert placed.json()["version"] == 1
                assert [e["type"] for e in placed.json()["events"]] == ["shop.orders.placed"]
                again = http.post("/orders/o-1", json=ORDER)  # expected version 0: stale now
                assert (again.status_code, again.json()["status"]) == (409, "conflict")
                refused = http.post("/orders/o-2", json={**ORDER, "quantity": 0})
                assert refused.status_code == 422
                assert "positive quantity" in refused.json()["reason"]
                assert http.post("/orders/o-3", json={"customer": "ada"}).status_code == 400
                deadline = time.monotonic() + 30
                shown = http.get("/orders/o-1")
                while shown.status_code == 404 and time.monotonic() < deadline:
                    time.sleep(0.2)  # the projection folds OrderPlaced into orders.db
                    shown = http.get("/orders/o-1")
                assert shown.json() == {"order_id": "o-1", "status": "placed"}, orders.log_tail()
                assert http.get("/orders/o-2").status_code == 404  # refused: never placed
        finally:
            orders.stop()
