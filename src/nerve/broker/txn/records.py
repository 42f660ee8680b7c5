"""Records of the ``__transaction_state`` topic and transaction markers, in Kafka's layout.

Key: version int16 (0), transactional id. Value v0: producer id int64, epoch int16, timeout
int32, status int8, partitions [topic, [partition int32]], last update int64, start int64.
A marker is a control batch (transactional and control bits, the producer's id and epoch)
holding one record: key (version 0, type 0 abort / 1 commit), value (version 0, coordinator
epoch). Few fixed fields, so ``struct`` rather than a schema library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from nerve.broker.groups.records import RecordFormatError
from nerve.protocol import records

_KEY_VERSION = 0
_VALUE_VERSION = 0
_MARKER = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


@dataclass
class TxnValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: int
    partitions: dict[str, list[int]] = field(default_factory=dict)
    last_update_ms: int = -1
    start_ms: int = -1


def encode_key(transactional_id: str) -> bytes:
    raw = transactional_id.encode()
    return struct.pack(">hh", _KEY_VERSION, len(raw)) + raw


def decode_key(data: bytes) -> str | None:
    if len(data) < 4:
        return None
    version, size = struct.unpack_from(">hh", data)
    if version != _KEY_VERSION or len(data) < 4 + size:
        return None
    return data[4 : 4 + size].decode()


def encode_value(value: TxnValue) -> bytes:
    out = bytearray(
        struct.pack(
            ">hqhib",
            _VALUE_VERSION,
            value.producer_id,
            value.producer_epoch,
            value.timeout_ms,
            value.status,
        )
    )
    out += struct.pack(">i", len(value.partitions))
    for topic, partitions in value.partitions.items():
        raw = topic.encode()
        out += struct.pack(">h", len(raw)) + raw
        out += struct.pack(">i", len(partitions))
        out += b"".join(struct.pack(">i", p) for p in partitions)
    out += struct.pack(">qq", value.last_update_ms, value.start_ms)
    return bytes(out)


def decode_value(data: bytes) -> TxnValue:
    try:
        version, pid, epoch, timeout, status = struct.unpack_from(">hqhib", data)
        if version != _VALUE_VERSION:
            raise RecordFormatError(f"transaction state value version {version} is not supported")
        pos = struct.calcsize(">hqhib")
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        partitions: dict[str, list[int]] = {}
        for _ in range(max(count, 0)):
            (size,) = struct.unpack_from(">h", data, pos)
            topic = data[pos + 2 : pos + 2 + size].decode()
            pos += 2 + size
            (n,) = struct.unpack_from(">i", data, pos)
            pos += 4
            partitions[topic] = list(struct.unpack_from(f">{n}i", data, pos))
            pos += 4 * n
        last_update, start = struct.unpack_from(">qq", data, pos)
    except struct.error as exc:
        raise RecordFormatError(f"transaction state value is truncated: {exc}") from None
    return TxnValue(pid, epoch, timeout, status, partitions, last_update, start)


def marker_batch(
    producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int
) -> bytes:
    """A control batch ending ``producer_id``'s transaction in one partition."""
    key = _MARKER.pack(0, 1 if commit else 0)
    value = _MARKER_VALUE.pack(0, coordinator_epoch)
    return records.encode_batch(
        [(key, value)],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
    )
