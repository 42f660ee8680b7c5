"""Issue 16 item 5: a saga in a real service (`nerve run`) on nerve and on Apache Kafka. An
order paid in full is shipped; an unpaid one is cancelled by its wall-clock deadline (and a
payment after that is passed over), and the stock it reserved is released (a compensating
command remembered at the first step); a service SIGKILLed mid-way and replaced by a replica
without local state keeps an instance's state (a part payment) and a pending deadline, and
every reaction is in its topic exactly once (read committed). Payments are keyed by their own
id: the saga re-keys them to the order through a repartition topic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.slow

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service
    from nerve.es import Saga, step, timeout

    class OrderPlaced(Event, topic="{prefix}.placed", key="order_id"):
        order_id: str
        total: int
        pay_within_s: float

    class PaymentReceived(Event, topic="{prefix}.paid", key="payment_id"):
        payment_id: str
        order_id: str
        amount: int

    class RequestPayment(Event, topic="{prefix}.request-payment", key="order_id"):
        order_id: str
        total: int

    class PartPaid(Event, topic="{prefix}.part-paid", key="order_id"):
        order_id: str
        paid: int

    class ShipOrder(Event, topic="{prefix}.ship", key="order_id"):
        order_id: str
        paid: int

    class CancelOrder(Event, topic="{prefix}.cancel", key="order_id"):
        order_id: str
        paid: int

    class ReleaseStock(Event, topic="{prefix}.release", key="order_id"):
        order_id: str

    flow = Service("{prefix}-flow", exactly_once=True)

    @flow.saga
    class OrderFlow(Saga, key="order_id"):
        total: int = 0
        paid: int = 0

        @step(OrderPlaced, start=True)
        def placed(self, event: OrderPlaced) -> RequestPayment:
            self.total = event.total
            self.schedule("payment", event.pay_within_s)
            self.undo_with(ReleaseStock(order_id=self.key))  # sent if the flow fails
            return RequestPayment(order_id=self.key, total=event.total)

        @step(PaymentReceived)
        def payment(self, event: PaymentReceived) -> PartPaid | ShipOrder:
            self.paid += event.amount
            if self.paid < self.total:
                return PartPaid(order_id=self.key, paid=self.paid)
            self.cancel("payment")
            self.finish()
            return ShipOrder(order_id=self.key, paid=self.paid)

        @timeout("payment")
        def unpaid(self) -> list[CancelOrder | ReleaseStock]:
            self.finish()
            return [CancelOrder(order_id=self.key, paid=self.paid), *self.compensate()]
    """
)

# murmur2, as Java clients and nerve's own producers place keys: a key's orders and its
# re-keyed payments must meet on one partition (librdkafka's default, CRC32, places them
# elsewhere).
_PRODUCER = {"enable.idempotence": True, "partitioner": "murmur2_random"}

OUTPUTS = ("request-payment", "part-paid", "ship", "cancel", "release")


class Outputs:
    """Everything committed to the saga's output topics, read as it comes."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int = 2) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}-check",
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self.prefix = prefix
        self.seen: list[tuple[str, dict]] = []
        self.consumer.assign(
            [
                TopicPartition(f"{prefix}.{t}", p, OFFSET_BEGINNING)
                for t in OUTPUTS
                for p in range(partitions)
            ]
        )

    def poll(self) -> None:
        for message in self.consumer.consume(500, 0.2):
            if message.error() is None and message.value() is not None:
                kind = (message.topic() or "").removeprefix(f"{self.prefix}.")
                self.seen.append((kind, json.loads(message.value())))

    def of(self, kind: str) -> list[tuple[str, int]]:
        return sorted(
            (d["order_id"], d.get("paid", d.get("total", 0))) for k, d in self.seen if k == kind
        )

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if check():
                return
        raise AssertionError(f"timed out waiting for {what}; seen {self.seen}")


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_saga_happy_path_timeout_and_sigkill_keep_state_and_deadlines(
    request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str
) -> None:
    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    bootstrap = server.bootstrap
    prefix = f"saga{uuid.uuid4().hex[:6]}"
    path = tmp_path / "flow.py"
    path.write_text(SERVICE.format(prefix=prefix))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"{prefix}.{t}" for t in ("placed", "paid", *OUTPUTS)]
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in topics]).values():
        future.result(30)
    producer = Producer(_PRODUCER | {"bootstrap.servers": bootstrap})

    def send(kind: str, **body: object) -> None:
        key = str(body.get("payment_id", body["order_id"])).encode()
        producer.produce(f"{prefix}.{kind}", key=key, value=json.dumps(body).encode())
        producer.flush(30)

    def run(state: str) -> subprocess.Popen[bytes]:
        # A killed member's partitions move after its session timeout: keep that short.
        command = [sys.executable, "-m", "nerve", "run", str(path), "-b", bootstrap,
                   "--no-registry", "--state-dir", str(tmp_path / state),
                   "-X", "session.timeout.ms=6000"]  # fmt: skip
        log = open(tmp_path / f"{state}.log", "ab")  # noqa: SIM115 - the child writes to it
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)

    outputs = Outputs(bootstrap, prefix)
    service = run("replica-0")
    try:
        # Happy path: placed, paid in two parts, shipped.
        send("placed", order_id="happy", total=10, pay_within_s=300)
        send("paid", payment_id="pay-1", order_id="happy", amount=3)
        send("paid", payment_id="pay-2", order_id="happy", amount=7)
        # Timeout path: never paid within 2 s, cancelled by the wall clock while idle.
        send("placed", order_id="unpaid", total=5, pay_within_s=2)
        outputs.wait(lambda: outputs.of("ship") == [("happy", 10)], "the happy order shipped")
        outputs.wait(lambda: outputs.of("cancel") == [("unpaid", 0)], "the unpaid cancelled")
        send(
            "paid", payment_id="pay-3", order_id="unpaid", amount=5
        )  # too late: its instance has ended

        # Mid-way: one order part paid, one waiting on a deadline; then SIGKILL.
        send("placed", order_id="kept", total=10, pay_within_s=300)
        send("paid", payment_id="pay-4", order_id="kept", amount=4)
        send("placed", order_id="deadline", total=8, pay_within_s=8)
        outputs.wait(
            lambda: (
                ("kept", 4) in outputs.of("part-paid")
                and ("deadline", 8) in outputs.of("request-payment")
            ),
            "the part payment and the second request",
        )
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        # A replica without local state takes over: everything from the changelog.
        service = run("replica-1")
        send("paid", payment_id="pay-5", order_id="kept", amount=6)
        outputs.wait(lambda: ("kept", 10) in outputs.of("ship"), "the kept order shipped")
        outputs.wait(lambda: ("deadline", 0) in outputs.of("cancel"), "the deadline after restart")
        time.sleep(2)  # anything doubled or late would show now
        outputs.poll()
    except BaseException:
        for log in sorted(tmp_path.glob("replica-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        outputs.consumer.close()
    assert outputs.of("ship") == [("happy", 10), ("kept", 10)]
    assert outputs.of("cancel") == [("deadline", 0), ("unpaid", 0)]
    assert outputs.of("release") == [("deadline", 0), ("unpaid", 0)], "compensated once each"
    # happy's two payments have their own keys, so other partitions: either comes first.
    part = outputs.of("part-paid")
    assert part in ([("happy", 3), ("kept", 4)], [("happy", 7), ("kept", 4)]), part
    requests = Counter(order for order, _ in outputs.of("request-payment"))
    assert requests == {"happy": 1, "unpaid": 1, "kept": 1, "deadline": 1}, "each reaction once"


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_two_replicas_split_the_instances_by_partition(
    request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str
) -> None:
    """Two replicas at once (the second joining while orders flow, so partitions move):
    every order ends once, shipped or cancelled by its deadline, and its compensation once."""
    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    bootstrap = server.bootstrap
    prefix = f"saga{uuid.uuid4().hex[:6]}"
    path = tmp_path / "flow.py"
    path.write_text(SERVICE.format(prefix=prefix))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"{prefix}.{t}" for t in ("placed", "paid", *OUTPUTS)]
    for future in admin.create_topics([NewTopic(t, 4, 1) for t in topics]).values():
        future.result(30)
    producer = Producer(_PRODUCER | {"bootstrap.servers": bootstrap})

    def send(kind: str, **body: object) -> None:
        key = str(body.get("payment_id", body["order_id"])).encode()
        producer.produce(f"{prefix}.{kind}", key=key, value=json.dumps(body).encode())

    def run(state: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "nerve", "run", str(path), "-b", bootstrap,
                   "--no-registry", "--state-dir", str(tmp_path / state)]  # fmt: skip
        log = open(tmp_path / f"{state}.log", "ab")  # noqa: SIM115 - the child writes to it
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)

    outputs = Outputs(bootstrap, prefix, partitions=4)
    paid = [f"o{i}" for i in range(30)]
    unpaid = [f"u{i}" for i in range(10)]
    services = [run("replica-0")]
    try:
        for n, order in enumerate(paid + unpaid):
            send("placed", order_id=order, total=10, pay_within_s=300 if order in paid else 3)
            if n == 10:
                producer.flush(30)
                services.append(run("replica-1"))  # joins while orders flow
        for order in paid:
            send("paid", payment_id=f"{order}-a", order_id=order, amount=4)
            send("paid", payment_id=f"{order}-b", order_id=order, amount=6)
        producer.flush(30)
        outputs.wait(
            lambda: (
                len(outputs.of("ship")) >= len(paid) and len(outputs.of("cancel")) >= len(unpaid)
            ),
            "every order ended",
            timeout=120,
        )
        time.sleep(2)  # anything doubled would show now
        outputs.poll()
    except BaseException:
        for log in sorted(tmp_path.glob("replica-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        for service in services:
            service.wait(30)
        outputs.consumer.close()
    assert outputs.of("ship") == sorted((order, 10) for order in paid)
    assert outputs.of("cancel") == sorted((order, 0) for order in unpaid)
    assert outputs.of("release") == sorted((order, 0) for order in unpaid)
    logs = [(tmp_path / f"replica-{i}.log").read_text() for i in range(2)]
    assert all("task(s) restored" in text for text in logs), "both replicas owned partitions"
