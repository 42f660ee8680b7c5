"""TLS listeners on nerve and on Kafka 4.4 configured alike (PEM keystore and truststore,
client certificates required on the SSL listener), and what crosses the wire."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import NewTopic

from tests.broker.security.conftest import Certs, SecureBroker, client_tls
from tests.broker.security.test_sasl import _round_trip


def test_librdkafka_with_a_client_certificate_produces_and_consumes(
    secure: SecureBroker, certs: Certs
) -> None:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    admin = secure.admin()
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    config = {"bootstrap.servers": secure.listeners["SSL"], "security.protocol": "SSL",
              "log_level": 0, **client_tls(certs, certs.alice)}  # fmt: skip
    assert _round_trip(config, topic) == [b"value-0", b"value-1", b"value-2"]


def test_a_client_without_a_certificate_is_refused_where_one_is_required(
    secure: SecureBroker, certs: Certs
) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": secure.listeners["SSL"],
            "security.protocol": "SSL",
            "log_level": 0,
            "error_cb": errors.append,
            **client_tls(certs),
        }
    )
    for _ in range(40):
        producer.poll(0.25)
        if errors:
            break
    assert errors, "a client without a certificate was not refused"
    assert errors[0].code() in (
        KafkaError._SSL,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    )
    metadata_ok = True
    try:
        producer.list_topics(timeout=2)
    except Exception:
        metadata_ok = False
    assert not metadata_ok


def test_a_client_that_does_not_trust_the_broker_gets_no_connection(
    secure: SecureBroker, tmp_path: object
) -> None:
    context = ssl.create_default_context()  # the system's CAs, not the test CA
    host, port = secure.listeners["SASL_SSL"].rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname=host)


class _Recorder:
    """A TCP relay to a broker that keeps every byte that passes through it."""

    def __init__(self, target: str) -> None:
        self.target = target.rsplit(":", 1)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.seen = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    self.seen += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def recorder_factory() -> Iterator[type[_Recorder]]:
    made: list[_Recorder] = []

    class Factory(_Recorder):
        def __init__(self, target: str) -> None:
            super().__init__(target)
            made.append(self)

    yield Factory
    for recorder in made:
        recorder.close()


@pytest.mark.parametrize("listener", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_nothing_is_readable_on_the_wire_of_a_tls_listener(
    nerve_secure: SecureBroker, certs: Certs, recorder_factory: type[_Recorder], listener: str
) -> None:
    """The SASL exchange (PLAIN's password) crosses a SASL_SSL listener encrypted; the
    same client on SASL_PLAINTEXT shows the password (so the check can fail)."""
    recorder = recorder_factory(nerve_secure.listeners[listener])
    config = {
        # The relay's address is only the bootstrap: the broker advertises itself, so the
        # client would go around the relay; one broker connection is enough here.
        "bootstrap.servers": recorder.address,
        "security.protocol": listener,
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
        "ssl.endpoint.identification.algorithm": "none",
        "log_level": 0,
        **client_tls(certs),
    }
    consumer = Consumer({**config, "group.id": "wire"})
    try:
        consumer.list_topics(timeout=10)
    finally:
        consumer.close()
    with recorder.lock:
        seen = bytes(recorder.seen)
    assert seen, "nothing went through the relay"
    assert (b"alice-secret" in seen) == (listener == "SASL_PLAINTEXT")
