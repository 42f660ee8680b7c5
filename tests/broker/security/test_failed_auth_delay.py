"""connection.failed.authentication.delay.ms (Kafka's, 100 ms by default): the refusal of a
failed SASL authentication is answered, and the connection closed, only after the delay, so
that a password guesser gets one try per delay and connection; the broker serves other
connections meanwhile. Lower bounds only: how much later the refusal arrives on a loaded
machine says nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest

from tests._broker import BrokerProcess
from tests.broker._kio_client import KioClient
from tests.broker.security._sasl_wire import closed_by_peer, handshake
from tests.broker.security.conftest import SecureBroker, sasl_configs

DELAY_S = 2.5


def _sasl(address: str, user: str, password: str, **extra: object) -> dict[str, object]:
    return {
        "bootstrap.servers": address,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
        "log_level": 0,
        **extra,
    }


def test_a_wrong_password_is_refused_after_the_default_delay(secure: SecureBroker) -> None:
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        assert handshake(client, "PLAIN").error_code == ErrorCode.none  # type: ignore[attr-defined]
        sent = time.monotonic()
        client.send(SaslAuthenticateRequest(auth_bytes=b"\0alice\0wrong"))
        response = client.receive(SaslAuthenticateRequest)
        waited = time.monotonic() - sent
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert waited >= 0.1, waited
        assert closed_by_peer(client)


@pytest.fixture(scope="module")
def slow_refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nerve broker whose refusals wait DELAY_S: its SASL_PLAINTEXT address."""
    root: Path = tmp_path_factory.mktemp("nerve-auth-delay")
    configs = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        **sasl_configs("SASL_PLAINTEXT"),
        "connection.failed.authentication.delay.ms": str(int(DELAY_S * 1000)),
    }
    proc = BrokerProcess(root / "data", configs=configs)
    proc.start()
    try:
        yield proc.listeners["SASL_PLAINTEXT"]
    finally:
        proc.close()


def test_other_connections_are_served_while_a_refusal_waits(slow_refusals: str) -> None:
    with KioClient(slow_refusals) as bad:
        assert handshake(bad, "PLAIN").error_code == ErrorCode.none  # type: ignore[attr-defined]
        sent = time.monotonic()
        bad.send(SaslAuthenticateRequest(auth_bytes=b"\0alice\0wrong"))
        time.sleep(0.2)  # the refusal is waiting by now
        # A client with the right password connects, authenticates and is answered meanwhile.
        good = AdminClient(_sasl(slow_refusals, "alice", "alice-secret"))
        assert good.list_topics(timeout=DELAY_S).brokers
        served = time.monotonic()
        response = bad.receive(SaslAuthenticateRequest)
        refused = time.monotonic()
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert refused - sent >= DELAY_S, refused - sent
        assert served < refused
        assert closed_by_peer(bad)


def test_librdkafka_hears_of_a_wrong_password_after_the_delay(slow_refusals: str) -> None:
    errors: list[tuple[float, KafkaError]] = []
    started = time.monotonic()
    producer = Producer(
        _sasl(
            slow_refusals, "alice", "wrong", error_cb=lambda e: errors.append((time.monotonic(), e))
        )
    )
    deadline = started + DELAY_S + 30
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    assert errors, "no authentication error reported"
    at, error = errors[0]
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert at - started >= DELAY_S, at - started


@pytest.mark.parametrize("value", ["-5", "soon"])
def test_a_bad_delay_stops_the_broker_in_one_line(tmp_path: Path, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "broker", "--data-dir", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0",
         "--config", f"connection.failed.authentication.delay.ms={value}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "nerve broker: cannot start the broker: connection.failed.authentication.delay.ms "
        f"must be a whole number of ms, 0 or more, not {value!r}"
    )
