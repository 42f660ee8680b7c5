"""A task: one partition of one sub-topology, with its stores and its clocks.

Nodes are shared by every task; what is per partition (stores, stream time per node) is here.
What a task sends (outputs, repartitioned records, late records, emitted events) goes through
its ``Sink``: the engine's producer in a running service, a list in the test driver.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from nerve.streams.records import Record
from nerve.streams.state import Store, TaskState
from nerve.streams.topology import SubTopology

log = logging.getLogger("nerve.streams")

TIMES = "__times"
"""The store of every node's stream time: kept with the state, so a restart does not forget
which windows have closed (Kafka Streams keeps it in memory only, and after a restart counts
records it had called late)."""


class Sink(Protocol):
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: list[tuple[str, Any]] | None = None,
        partition: int | None = None,
    ) -> None: ...

    def emit(self, events: list[Any], record: Record, operator: str) -> None: ...

    def late(self, record: Record, operator: str, window: str, late_by_ms: int) -> None: ...


class Task:
    def __init__(
        self, service: str, sub: SubTopology, partition: int, state: TaskState, sink: Sink
    ) -> None:
        self.service = service
        self.sub = sub
        self.partition = partition
        self.id = f"{sub.index}_{partition}"
        self.state = state
        self.sink = sink
        self.times = state.store(TIMES, changelog_name(service, f"{sub.index}-times"))
        for name in sub.stores:
            state.store(name, changelog_name(service, name))
        # Indexes rebuilt from the stores when needed (a suppression buffer's order by window
        # end): dropped with a rollback.
        self._transient: dict[str, Any] = {}

    def transient(self, name: str, build: Any) -> Any:
        value = self._transient.get(name)
        if value is None:
            value = self._transient[name] = build()
        return value

    def rollback(self) -> None:
        self.state.rollback()
        self._transient.clear()

    def store(self, name: str) -> Store:
        return self.state.stores[name]

    def stream_time(self, node: str) -> int:
        return int(self.times.get(node, -1))

    def advance(self, node: str, timestamp: int) -> int:
        """The node's stream time after seeing ``timestamp`` (the largest seen so far)."""
        now = self.times.get(node, -1)
        if timestamp > now:
            self.times.put(node, timestamp)
            return timestamp
        return int(now)

    def process(self, source: Any, record: Record) -> None:
        source.process(self, record)


def changelog_name(service: str, store: str) -> str:
    return f"{service}-{store}-changelog"


def repartition_name(service: str, name: str) -> str:
    return f"{service}-{name}-repartition"
