"""Broker memory under hostile connections (issue 11's figures), for one or more brokers.

Why this shape: the question is how much a peer can make the broker hold, so each case opens raw
sockets that send as little as possible and the broker's resident memory (VmRSS) is read while
they are open; a Metadata request on a fresh connection shows whether the broker still answers.
Several brokers (``--broker LABEL=COMMAND``, e.g. an earlier checkout) run the same cases, one
after the other, so the table compares them in one run.

Run `python bench/hardening.py --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence

from _broker import SpawnedBroker

HUNDRED_MB = struct.pack(">i", 100 * 1024 * 1024)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def answer_seconds(bootstrap: str, timeout: float = 30.0) -> float:
    """Seconds an ApiVersions v0 takes on a fresh connection (the timeout if none comes)."""
    host, _, port = bootstrap.rpartition(":")
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            request = struct.pack(">hhih", 18, 0, 1, 3) + b"rss"
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv(sock, 4))[0]
            _recv(sock, size)
    except OSError:
        return timeout
    return time.monotonic() - started


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


@contextlib.contextmanager
def connections(bootstrap: str, count: int, first: bytes) -> Iterator[list[socket.socket]]:
    host, _, port = bootstrap.rpartition(":")
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=30)
            if first:
                sock.sendall(first)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


CASES = [
    ("2,000 idle connections", 2000, b""),
    ("1,000 partial frames (100 MB declared, 1 KiB sent)", 1000, HUNDRED_MB + bytes(1024)),
    ("30 connections declaring 100 MB (5 bytes each)", 30, HUNDRED_MB + b"x"),
]


def measure(command: Sequence[str] | None) -> list[tuple[str, float, float]]:
    """Each case on a broker of its own (memory a case frees is kept by the allocator and
    would show against the next): (case, RSS in MB, seconds a fresh client waited)."""
    out = []
    for label, count, first in [("idle broker (RSS, not growth)", 0, b""), *CASES]:
        with SpawnedBroker(command=command, cpu=None) as broker:
            assert broker.process is not None
            pid = broker.process.pid
            time.sleep(1)
            base = rss_mb(pid)
            if not count:
                out.append((label, base, answer_seconds(broker.bootstrap)))
                continue
            with connections(broker.bootstrap, count, first):
                time.sleep(2)
                waited = answer_seconds(broker.bootstrap)
                out.append((label, rss_mb(pid) - base, waited))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker",
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="a broker to measure, e.g. 'before=env PYTHONPATH=old/src python -m nerve' "
        "(repeatable; default: this checkout's nerve)",
    )
    args = parser.parse_args(argv)
    brokers = [b.partition("=")[::2] for b in args.broker] or [("nerve", "")]
    results = {}
    for label, command in brokers:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        results[label] = measure(shlex.split(command) if command else None)
    labels = [label for label, _ in brokers]
    print("| case | " + " | ".join(f"{b} RSS growth MB | {b} answer s" for b in labels) + " |")
    print("| --- |" + " ---: | ---: |" * len(labels))
    for row, (case, *_) in enumerate(results[labels[0]]):
        cells = []
        for label in labels:
            _, mb, waited = results[label][row]
            cells += [f"{mb:.1f}", f"{waited:.2f}"]
        print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
