"""Streams: stateful stream processing and complex event processing for nerve services.

A service declares streams (``service.stream(EventType)``) and chains operators on them:
filters and maps, re-keying through repartition topics, aggregations into tables, windows
(tumbling, hopping, sliding, session), joins, and sequence patterns (``pattern``). State lives in
stores local to the replica that owns a partition, each backed by a compacted changelog topic,
so it survives crashes and moves with its partition; with ``exactly_once=True`` the changelog,
the outputs and the consumed offsets commit in one Kafka transaction.

Depends on the service framework (``nerve.service``) and confluent-kafka only: it runs on any
Kafka. Semantics follow Kafka Streams' (docs/streams.md says where they differ and why).
"""

from __future__ import annotations

from nerve.streams.dsl import GroupedStream, Stream, Table, WindowedStream, WindowedTable
from nerve.streams.patterns import Match, Pattern, pattern
from nerve.streams.records import Change, Record, Windowed
from nerve.streams.windows import hopping, session, sliding, tumbling

__all__ = [
    "Change",
    "GroupedStream",
    "Match",
    "Pattern",
    "Record",
    "Stream",
    "Table",
    "Windowed",
    "WindowedStream",
    "WindowedTable",
    "hopping",
    "pattern",
    "session",
    "sliding",
    "tumbling",
]
