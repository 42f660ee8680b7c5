"""The broker's security state, as keyed records in the compacted internal topic
``__nerve_security``: SCRAM credentials (salted, never the password) and ACL bindings.

Kafka keeps both in its metadata log; nerve keeps them the way it keeps group offsets, so
they survive restarts, compaction keeps the latest record of each key, and a change is
fsynced before the request that made it is answered. Clients never read this topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nerve.broker import internal_topics
from nerve.protocol import records

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Topic

SECURITY_TOPIC = "__nerve_security"
_SEGMENT_BYTES = 16 * 1024 * 1024

Key = dict[str, Any]
Value = dict[str, Any] | None


def encode_key(key: Key) -> bytes:
    return json.dumps(key, sort_keys=True, separators=(",", ":")).encode()


class SecurityStore:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._topic: Topic | None = None

    def open(self, apply: Callable[[Key, Value], None]) -> int:
        """Replay every record into ``apply``; returns how many were read. The topic is made
        by the first change, so a broker that never stores a credential or an ACL has none."""
        if self.broker.topics.get(SECURITY_TOPIC) is None:
            return 0
        self._topic = internal_topics.ensure(self.broker, SECURITY_TOPIC, 1, _SEGMENT_BYTES)
        count = 0
        for _partition, header, batch in internal_topics.replay(self._topic):
            if header.is_control:
                continue
            for record in records.decode_records(batch):
                if record.key is None:
                    continue
                key = json.loads(bytes(record.key))
                value = None if record.value is None else json.loads(bytes(record.value))
                apply(key, value)
                count += 1
        return count

    async def write(self, changes: Sequence[tuple[Key, Value]]) -> None:
        """Append the changes as one batch and wait for the fsync that covers it."""
        if self._topic is None:
            self._topic = internal_topics.ensure(self.broker, SECURITY_TOPIC, 1, _SEGMENT_BYTES)
        pairs = [
            (encode_key(key), None if value is None else json.dumps(value).encode())
            for key, value in changes
        ]
        internal_topics.append(self.broker, self._topic.partitions[0], pairs)
        await self.broker.group_commit.sync()
