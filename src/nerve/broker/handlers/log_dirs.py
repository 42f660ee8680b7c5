"""DescribeLogDirs: the broker's one log directory (its data dir), each partition's size in it,
and the disk's total and usable bytes, as kafka-log-dirs and admin clients read them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_describe_log_dirs(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(35, header.api_version, True)
    topics = broker.topics
    if request.topics is None:
        wanted = [(name, range(len(t.partitions))) for name, t in sorted(topics.topics.items())]
    else:
        wanted = [(t.topic, t.partitions) for t in request.topics]
    described = []
    for name, indexes in wanted:
        # Partitions this broker does not hold are left out, as Kafka does.
        found = [p for p in (topics.partition(name, i) for i in indexes) if p is not None]
        if not found:
            continue
        described.append(
            codec.make(
                module,
                "DescribeLogDirsTopic",
                name=name,
                partitions=tuple(
                    codec.make(
                        module,
                        "DescribeLogDirsPartition",
                        partition_index=p.index,
                        partition_size=p.log.size_bytes,
                        offset_lag=0,
                        is_future_key=False,
                    )
                    for p in found
                ),
            )
        )
    data_dir = Path(broker.config.data_dir).resolve()
    usage = shutil.disk_usage(data_dir)
    result = codec.make(
        module,
        "DescribeLogDirsResult",
        error_code=ErrorCode.none,
        log_dir=str(data_dir),
        topics=tuple(described),
        total_bytes=usage.total,
        usable_bytes=usage.free,
        is_cordoned=False,
    )
    return codec.make(
        module,
        "DescribeLogDirsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        results=(result,),
    )
