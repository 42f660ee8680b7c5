"""Every client the project tests connects to the secure listeners of nerve and of Apache Kafka
4.4 configured alike: kafka-python, aiokafka, kcat, the Java client, kafkajs and franz-go with
SCRAM over TLS, PLAIN, and TLS client certificates (librdkafka through confluent-kafka is in
test_sasl.py and test_tls.py)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from tests.broker.security.conftest import SCRAM_USERS, Certs, SecureBroker
from tests.compat.test_java_client import java, run  # noqa: F401  (the fixture)
from tests.compat.test_kcat import KCAT
from tests.compat.test_other_languages import (  # noqa: F401  (the fixtures)
    Runner,
    franz_go,
    kafkajs,
)

USER = "scram-user"
PASSWORD = SCRAM_USERS[USER]


def _topic(broker: SecureBroker) -> str:
    name = f"clients-{uuid.uuid4().hex[:8]}"
    admin = broker.admin()
    admin.create_topics([NewTopic(name, 1)])[name].result(30)
    return name


@pytest.mark.parametrize(
    ("listener", "mechanism"),
    [
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SSL", None),
    ],
)
def test_kafka_python(
    secure: SecureBroker, certs: Certs, listener: str, mechanism: str | None
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = _topic(secure)
    settings: dict[str, object] = {
        "bootstrap_servers": secure.listeners[listener],
        "security_protocol": listener,
    }
    if mechanism is not None:
        user, password = ("alice", "alice-secret") if mechanism == "PLAIN" else (USER, PASSWORD)
        settings.update(
            sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password
        )
    if "SSL" in listener:
        settings["ssl_cafile"] = str(certs.ca.ca)
    if listener == "SSL":
        settings.update(ssl_certfile=str(certs.alice.cert), ssl_keyfile=str(certs.alice.key))
    producer = KafkaProducer(**settings)
    producer.send(topic, b"from kafka-python").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **settings
    )
    values = [m.value for m in consumer]
    consumer.close()
    assert values == [b"from kafka-python"]


def test_aiokafka_with_scram_over_tls(secure: SecureBroker, certs: Certs) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _topic(secure)
    context = ssl.create_default_context(cafile=str(certs.ca.ca))
    settings: dict[str, object] = {
        "bootstrap_servers": secure.listeners["SASL_SSL"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
        "ssl_context": context,
    }

    async def main() -> list[bytes]:
        producer = AIOKafkaProducer(**settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **settings)
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 20)
            return [message.value]
        finally:
            await consumer.stop()

    assert asyncio.run(main()) == [b"from aiokafka"]


@pytest.mark.skipif(KCAT is None, reason="kcat binary not installed; CI installs it")
@pytest.mark.parametrize("listener", ["SASL_SSL", "SSL"])
def test_kcat(secure: SecureBroker, certs: Certs, listener: str) -> None:
    assert KCAT is not None
    topic = _topic(secure)
    options = ["-X", f"security.protocol={listener}", "-X", f"ssl.ca.location={certs.ca.ca}"]
    if listener == "SASL_SSL":
        # PLAIN: the kcat Debian ships (librdkafka 2.0.2) repeats its nonce in SCRAM's final
        # message, which Kafka refuses as nerve does (SCRAM is tested with newer librdkafka).
        options += [
            "-X",
            "sasl.mechanism=PLAIN",
            "-X",
            "sasl.username=alice",
            "-X",
            "sasl.password=alice-secret",
        ]
    else:
        options += [
            "-X",
            f"ssl.certificate.location={certs.alice.cert}",
            "-X",
            f"ssl.key.location={certs.alice.key}",
        ]
    address = secure.listeners[listener]
    produced = subprocess.run(
        [KCAT, "-b", address, *options, "-P", "-t", topic],
        input="from kcat\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [KCAT, "-b", address, *options, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert consumed.stdout.strip() == "from kcat", consumed.stderr


def test_java_client_with_scram_over_tls(
    secure: SecureBroker,
    certs: Certs,
    java: list[str],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = _topic(secure)
    config = tmp_path / "client.properties"
    config.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{USER}" password="{PASSWORD}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={certs.ca.ca}\n"
    )
    monkeypatch.setenv("NERVE_CLIENT_CONFIG", str(config))
    address = secure.listeners["SASL_SSL"]
    assert run(java, "produce", address, topic, "20") == ["produced 20"]
    consumed = run(java, "consume", address, topic, f"g-{uuid.uuid4().hex[:6]}", "20")
    assert consumed[-1] == "committed 20"


def _security_env(certs: Certs, listener: str, mechanism: str | None) -> dict[str, str]:
    """What tests/compat/js and tests/compat/go read to connect securely."""
    env: dict[str, str] = {}
    if mechanism is not None:
        user, password = ("alice", "alice-secret") if mechanism == "PLAIN" else (USER, PASSWORD)
        env.update(
            NERVE_SASL_MECHANISM=mechanism, NERVE_SASL_USERNAME=user, NERVE_SASL_PASSWORD=password
        )
    if "SSL" in listener:
        env["NERVE_TLS_CA"] = str(certs.ca.ca)
    if listener == "SSL":
        env.update(NERVE_TLS_CERT=str(certs.alice.cert), NERVE_TLS_KEY=str(certs.alice.key))
    return env


_WARMED: set[str] = set()


def _warm(broker: SecureBroker) -> None:
    """An idempotent producer and a consumer group once on the setup listener, so that a
    fresh Kafka's producer-id and group coordinators are loaded before kafkajs comes (it logs
    their retriable errors, and the runner fails on any line kafkajs logs)."""
    if broker.name in _WARMED:
        return
    from confluent_kafka import Consumer, Producer

    topic = _topic(broker)
    producer = Producer({"bootstrap.servers": broker.plaintext, "enable.idempotence": True})
    producer.produce(topic, b"warm")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.plaintext,
            "group.id": f"warm-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1)
            if message is not None and not message.error():
                break
        assert message is not None and message.value() == b"warm"
        consumer.commit(message, asynchronous=False)
    finally:
        consumer.close()
    _WARMED.add(broker.name)


SECURE_CASES = [
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_SSL", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SSL", None),
]


@pytest.fixture(params=["kafkajs", "franz-go"])
def other_client(request: pytest.FixtureRequest) -> Runner:
    """kafkajs and franz-go, the programs of tests/compat/js and tests/compat/go."""
    runner: Runner = request.getfixturevalue(request.param.replace("-", "_"))
    return runner


@pytest.mark.slow
@pytest.mark.parametrize(("listener", "mechanism"), SECURE_CASES)
def test_kafkajs_and_franz_go(
    secure: SecureBroker,
    certs: Certs,
    other_client: Runner,
    listener: str,
    mechanism: str | None,
) -> None:
    _warm(secure)
    topic = _topic(secure)
    env = _security_env(certs, listener, mechanism)
    address = secure.listeners[listener]
    assert other_client("produce", address, topic, "20", env=env) == ["produced 20"]
    consumed = other_client("consume", address, topic, f"g-{uuid.uuid4().hex[:6]}", "20", env=env)
    assert consumed[-1] == "committed 20"


@pytest.mark.slow
def test_kafkajs_and_franz_go_with_a_wrong_password_are_refused(
    secure: SecureBroker, certs: Certs, other_client: Runner
) -> None:
    # An admin request, which both return the refusal from; franz-go's producer keeps
    # retrying a refused login until its deadline, on Kafka as on nerve.
    topic = f"refused-{uuid.uuid4().hex[:8]}"
    env = {**_security_env(certs, "SASL_SSL", "SCRAM-SHA-512"), "NERVE_SASL_PASSWORD": "wrong"}
    with pytest.raises(AssertionError, match=r"(?i)authentication"):
        other_client("admin", secure.listeners["SASL_SSL"], topic, env=env)
    assert topic not in secure.admin().list_topics(timeout=30).topics
