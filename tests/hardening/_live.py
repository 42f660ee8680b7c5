"""Helpers for replaying hostile input against a live broker: its memory, raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

from tests.broker import _wire as w


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def answers_quickly(bootstrap: str, within_s: float = 5.0) -> float:
    """Seconds a fresh connection waits for ApiVersions and Metadata; fails past ``within_s``."""
    started = time.monotonic()
    with w.connect(bootstrap, timeout=within_s) as sock:
        sock.sendall(w.api_versions_request(1))
        w.recv_frame(sock)
        sock.sendall(w.metadata_request(2, 1))
        w.recv_frame(sock)
    return time.monotonic() - started


@contextlib.contextmanager
def open_connections(bootstrap: str, count: int, first_bytes: bytes = b"") -> Iterator[list]:
    """``count`` raw connections, each having sent ``first_bytes``; closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = w.connect(bootstrap)
            if first_bytes:
                sock.sendall(first_bytes)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed(sock: socket.socket) -> bool:
    """True if the peer has closed ``sock`` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.setblocking(True)
