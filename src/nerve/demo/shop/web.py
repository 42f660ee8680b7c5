"""The shop's web front: commands sent from HTTP handlers, the answer awaited over Kafka.

A Starlette app (what a FastAPI route does is the same ``await client.send(...)``):
``POST /orders/{order_id}`` places an order and answers 201 with the events, 409 for a stale
``expected_version`` (an order placed twice), 422 when the aggregate refuses, 504 when no
replica answered in time; ``GET /orders/{order_id}`` reads the order from its read model
(orders by status, kept in SQLite by the orders service's projection): the write side and the
read side of CQRS, each behind one route.

    NERVE_BOOTSTRAP=127.0.0.1:9092 NERVE_DEMO_SHOP_DATA=.nerve/demo \\
        uvicorn nerve.demo.shop.web:app --port 8000
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nerve.demo.shop.events import PlaceOrder
from nerve.es import CommandClient
from nerve.service.config import RunConfig

ANSWER_WITHIN_S = 10.0


def make_app(config: RunConfig, data_dir: Path) -> Starlette:
    """The app, sending through one CommandClient for the process (it is thread-safe and
    serves every request's event loop)."""
    client = CommandClient("orders", config)

    async def place(request: Request) -> JSONResponse:
        order_id = request.path_params["order_id"]
        try:
            command = PlaceOrder(order_id=order_id, **(await request.json()))
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            # A new order: version 0 expected, so placing it twice is a conflict.
            outcome = await client.send(command, expected_version=0, timeout=ANSWER_WITHIN_S)
        except TimeoutError:
            return JSONResponse({"error": "no answer from orders in time"}, status_code=504)
        status = {"accepted": 201, "conflict": 409, "rejected": 422}.get(outcome.status, 500)
        body = {"status": outcome.status, "version": outcome.version, "reason": outcome.reason,
                "events": outcome.events}  # fmt: skip
        return JSONResponse(body, status_code=status)

    async def show(request: Request) -> JSONResponse:
        order_id = request.path_params["order_id"]
        database = data_dir / "orders.db"
        row = None
        if database.exists():
            db = sqlite3.connect(database, timeout=30)
            try:
                row = db.execute(
                    "select status from orders where order_id = ?", (order_id,)
                ).fetchone()
            except sqlite3.OperationalError:  # the projection has not made its table yet
                row = None
            finally:
                db.close()
        if row is None:
            return JSONResponse({"error": f"no order {order_id} (yet)"}, status_code=404)
        return JSONResponse({"order_id": order_id, "status": row[0]})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            client.close()

    return Starlette(
        routes=[
            Route("/orders/{order_id}", place, methods=["POST"]),
            Route("/orders/{order_id}", show, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _from_environment() -> Starlette:
    config = RunConfig(
        bootstrap_servers=os.environ.get("NERVE_BOOTSTRAP", "127.0.0.1:9092"),
        registry_url=os.environ.get("NERVE_REGISTRY_URL") or None,
    )
    return make_app(config, Path(os.environ.get("NERVE_DEMO_SHOP_DATA", ".")))


def __getattr__(name: str) -> Starlette:
    """``app`` is made on first use (``uvicorn nerve.demo.shop.web:app``), not at import."""
    if name == "app":
        return _from_environment()
    raise AttributeError(name)
