"""Serving Prometheus metrics over HTTP on the running asyncio loop (broker and registry).

prometheus_client's own ``start_http_server`` answers from a thread of its own; the broker's
collectors read its topics, groups and transactions, which only the event loop changes, so here
a scrape is answered on the loop itself (prometheus_client's ASGI app under uvicorn): every
collector sees the state between two of the loop's steps, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


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
        from prometheus_client import make_asgi_app

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
            make_asgi_app(self.registry),
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

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
            await self._task
            self._server = self._task = None
