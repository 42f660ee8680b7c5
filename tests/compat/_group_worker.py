"""A confluent-kafka group consumer run as its own process by tests/compat/test_groups.py.

It subscribes, consumes and commits every message synchronously, and reports on stdout, one
JSON object per line: ``{"assigned": [partitions]}`` after every rebalance callback and
``{"consumed": [partition, offset, value]}`` for every message. It stops on SIGTERM (closing
cleanly, which leaves the group) or dies on SIGKILL (which does not).

    python tests/compat/_group_worker.py BOOTSTRAP TOPIC GROUP ASSIGNOR [INSTANCE_ID]

ASSIGNOR ``consumer:uniform`` or ``consumer:range`` joins with the consumer group protocol
(KIP-848, ``group.protocol=consumer``) and that server-side assignor; its rebalances are
incremental, like cooperative-sticky's.
"""

from __future__ import annotations

import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main() -> None:
    bootstrap, topic, group, assignor = sys.argv[1:5]
    instance_id = sys.argv[5] if len(sys.argv) > 5 else None
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    protocol, _, remote = assignor.partition(":")
    if protocol == "consumer":
        # Session and heartbeat are the broker's settings in this protocol.
        config.update({"group.protocol": "consumer", "group.remote.assignor": remote})
    else:
        config.update(
            {
                "partition.assignment.strategy": assignor,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
    if instance_id:
        config["group.instance.id"] = instance_id
    consumer = Consumer(config)
    cooperative = assignor == "cooperative-sticky" or protocol == "consumer"
    owned: set[int] = set()

    def report(**item: object) -> None:
        print(json.dumps(item), flush=True)

    def on_assign(_: Consumer, partitions: list[TopicPartition]) -> None:
        if not cooperative:
            owned.clear()
        owned.update(p.partition for p in partitions)
        report(assigned=sorted(owned))

    def on_revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
        if cooperative:
            owned.difference_update(p.partition for p in partitions)
        else:
            owned.clear()
        report(assigned=sorted(owned))

    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    report(started=True)
    while running:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            report(error=str(message.error()))
            continue
        report(consumed=[message.partition(), message.offset(), message.value().decode()])
        try:
            consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            # A commit refused during a rebalance: the message is redelivered (at least once).
            report(commit_error=str(exc))
    consumer.close()
    report(closed=True)


if __name__ == "__main__":
    main()
