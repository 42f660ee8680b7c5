"""Serving Prometheus metrics over HTTP on the running asyncio loop (broker and registry).

prometheus_client's own ``start_http_server`` answers from a thread of its own; the broker's
collectors read its topics, groups and transactions, which only the event loop changes, so here
a scrape collects on the loop itself (under uvicorn): every collector sees the state between
two of the loop's steps, never in the middle of one. Only the collecting: writing the text,
nine tenths of a scrape's cost (prometheus_client checks and escapes every label of every
sample), runs in a worker thread on the collected values, so that a broker with thousands of
partitions keeps serving its clients meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric


class MetricsServer:
    """``http://HOST:PORT/metrics`` for one registry, started and stopped with the component."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
        self.host, self.port = host, port
        self._server: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound address. Raises OSError when it cannot bind."""
        import uvicorn

        class _Server(uvicorn.Server):
            # The nerve command owns SIGINT/SIGTERM: uvicorn must not take them.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        config = uvicorn.Config(
            self._app,
            interface="asgi3",  # a bound method: uvicorn would guess ASGI 2
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.port = port
        return host, port

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """GET any path: the metrics, in the text format or OpenMetrics as the scraper asks,
        gzipped if it accepts that (what prometheus_client's own servers answer)."""
        import gzip

        from prometheus_client.exposition import choose_encoder

        if scope["type"] != "http":
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
        encoder, content_type = choose_encoder(headers.get(b"accept", ""))
        families = list(self.registry.collect())  # on the loop: one consistent state
        body = await asyncio.to_thread(encoder, _Collected(families))
        response_headers = [(b"content-type", content_type.encode())]
        if "gzip" in headers.get(b"accept-encoding", ""):
            body = await asyncio.to_thread(gzip.compress, body)
            response_headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
            await self._task
            self._server = self._task = None


class _Collected:
    """Families already collected, as the one collector the text encoders read."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families
