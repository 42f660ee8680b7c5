"""Serving the console with uvicorn on the caller's event loop, as the registry is served:
``nerve console`` runs it alone, ``nerve up`` beside the broker and the registry."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from nerve.console.app import build_app
from nerve.console.config import ConsoleConfig


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the nerve command owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = build_app(config)

    async def start(self) -> tuple[str, int]:
        """Accept HTTP; returns the bound address (port 0 picks a free one)."""
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            # A live tail's stream ends at its next keep-alive; do not wait for it.
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.app.state.consoles.close)
