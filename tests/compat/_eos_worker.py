"""A consume-transform-produce loop with exactly-once semantics, run as its own process by
tests/compat/test_transactions.py (which kills it with SIGKILL at random moments).

It reads ``INPUT`` in consumer group ``GROUP`` (read_committed), writes ``value + "!"`` to
``OUTPUT`` and commits the consumed offsets inside the same transaction, every ``BATCH``
messages. It prints ``done`` and exits once it has partitions and finds nothing to do for 3 seconds.

    python tests/compat/_eos_worker.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID BATCH
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, source, sink, group, transactional_id, batch = sys.argv[1:7]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 10000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([source])
    in_txn = 0
    idle_since = time.monotonic()
    while True:
        message = consumer.poll(0.2)
        if message is None or message.error():
            if in_txn:
                producer.send_offsets_to_transaction(
                    consumer.position(consumer.assignment()),
                    consumer.consumer_group_metadata(),
                    30,
                )
                producer.commit_transaction(30)
                in_txn = 0
            if not consumer.assignment():
                idle_since = time.monotonic()  # still joining: not idle yet
            elif time.monotonic() - idle_since > 3:
                break
            continue
        idle_since = time.monotonic()
        if not in_txn:
            producer.begin_transaction()
        producer.produce(sink, message.value() + b"!", key=message.key())
        in_txn += 1
        if in_txn >= int(batch):
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(30)
            in_txn = 0
    print("done", flush=True)
    consumer.close()


if __name__ == "__main__":
    main()
