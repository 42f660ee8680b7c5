"""Issue 11, items 1 and 2: what a peer declares costs nothing until it sends it, the bytes
buffered across connections are bounded, and connections that never finish a request (or never
send one) are closed."""

from __future__ import annotations

import contextlib
import struct
import time

import pytest

from tests._broker import BrokerProcess
from tests._ck import broker_serves_clients
from tests.broker import _wire as w
from tests.conftest import BrokerFactory, TopicNameFactory
from tests.hardening._live import answers_quickly, closed, open_connections, rss_mb

HUNDRED_MB = struct.pack(">i", 100 * 1024 * 1024)


def test_declared_frame_sizes_reserve_no_memory(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    # Before the fix each of these reserved the declared 100 MB: 3 GB, and no answers.
    before = rss_mb(broker.pid)
    with open_connections(broker.bootstrap, 30, HUNDRED_MB + b"x"):
        time.sleep(0.5)
        assert answers_quickly(broker.bootstrap) < 2
        assert rss_mb(broker.pid) - before < 30
    broker_serves_clients(broker.bootstrap, topic_name())


def test_bytes_buffered_across_connections_are_bounded(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({"queued.max.request.bytes": 4 * 1024 * 1024})
    before = rss_mb(broker.pid)
    chunk = bytes(256 * 1024)
    with open_connections(broker.bootstrap, 40, HUNDRED_MB) as socks:
        # 40 peers each push 2 MB of a 100 MB request: 80 MB if nothing bounded it.
        for sock in socks:
            sock.setblocking(False)
        deadline = time.monotonic() + 5
        for _ in range(8):
            for sock in socks:
                # BlockingIOError: the broker stopped reading this one, the bound at work.
                with contextlib.suppress(BlockingIOError):
                    sock.send(chunk)
            if time.monotonic() > deadline:
                break
        time.sleep(0.5)
        grown = rss_mb(broker.pid) - before
        assert grown < 40, f"broker grew {grown:.0f} MB with a 4 MB bound on queued requests"
        assert answers_quickly(broker.bootstrap) < 2
    broker_serves_clients(broker.bootstrap, topic_name())


def test_a_request_that_never_finishes_arriving_is_closed(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({"socket.request.receive.timeout.ms": 1500})
    with w.connect(broker.bootstrap) as loris, w.connect(broker.bootstrap) as client:
        loris.sendall(w.api_versions_request(1)[:6])
        started = time.monotonic()
        while time.monotonic() - started < 6 and not closed(loris):
            client.sendall(w.api_versions_request(2))  # a healthy neighbour keeps working
            w.recv_frame(client)
            time.sleep(0.2)
        assert closed(loris)
        assert 1.4 < time.monotonic() - started < 4
        assert not closed(client)
    assert "still incomplete" in broker.stderr_text()
    broker_serves_clients(broker.bootstrap, topic_name())


def test_a_request_dribbled_byte_by_byte_is_closed_at_the_deadline(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory({"socket.request.receive.timeout.ms": 1500})
    request = w.metadata_request(1, 1)
    with w.connect(broker.bootstrap) as loris:
        started = time.monotonic()
        for byte in request[:-1]:
            try:
                loris.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if closed(loris):
                break
        assert closed(loris) or w.closed_by_peer(loris, 3)
        assert time.monotonic() - started < 5


def test_idle_connections_are_closed_after_connections_max_idle_ms(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory({"connections.max.idle.ms": 1500})
    with w.connect(broker.bootstrap) as silent, w.connect(broker.bootstrap) as busy:
        started = time.monotonic()
        while time.monotonic() - started < 4:
            busy.sendall(w.api_versions_request(1))
            w.recv_frame(busy)
            time.sleep(0.3)
        assert closed(silent)
        assert not closed(busy)


@pytest.mark.slow
def test_two_thousand_connections_and_a_thousand_partial_frames_stay_small(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    before = rss_mb(broker.pid)
    with open_connections(broker.bootstrap, 2000):
        time.sleep(1)
        idle = rss_mb(broker.pid) - before
        assert answers_quickly(broker.bootstrap) < 5
    with open_connections(broker.bootstrap, 1000, HUNDRED_MB + b"\x00" * 100):
        time.sleep(1)
        loris = rss_mb(broker.pid) - before
        assert answers_quickly(broker.bootstrap) < 5
    print(
        f"broker RSS growth: 2,000 idle connections {idle:.1f} MB, 1,000 partial frames "
        f"{loris:.1f} MB"
    )
    assert idle < 100 and loris < 100
    broker_serves_clients(broker.bootstrap, topic_name())
