"""The processor graph a service's streams make, cut into sub-topologies.

Operators are nodes; each forwards records to its children. A sub-topology is what one task
runs: the nodes reachable from a set of co-partitioned source topics, up to the repartition
topics that feed the next sub-topology (a key change: records must move to the partition of
their new key before they are aggregated or joined). Stores belong to the sub-topology of the
node that uses them, one instance per partition (the task's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nerve.streams.records import Record

if TYPE_CHECKING:
    from nerve.streams.task import Task


class Node:
    """A processor. ``process`` runs for every record reaching it, in the task of the record's
    partition; per-partition state lives in the task's stores, never on the node."""

    kind = "node"

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[Node] = []
        self.parents: list[Node] = []
        # Stores this node uses: name -> changelogged?
        self.stores: dict[str, bool] = {}

    def add(self, child: Node) -> Node:
        self.children.append(child)
        child.parents.append(self)
        return child

    def process(self, task: Task, record: Record) -> None:
        self.forward(task, record)

    def forward(self, task: Task, record: Record) -> None:
        for child in self.children:
            child.process(task, record)

    def describe(self) -> dict[str, Any]:
        """What the catalog shows of the node: its kind, its stores, its window."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.stores:
            out["stores"] = list(self.stores)
        windows = getattr(self, "windows", None)
        if windows is not None:
            out["window"] = {k: v for k, v in vars(windows).items()}
        for attribute in ("grace", "size", "gap", "topic"):
            value = getattr(self, attribute, None)
            if isinstance(value, int | str) and not isinstance(value, bool):
                out[attribute] = value
        return out


class SourceNode(Node):
    """Where records of a topic enter: ``decode`` turns (key, value, message) into a record's
    key and value (an event, text, bytes, ...)."""

    kind = "source"

    def __init__(
        self,
        name: str,
        topic: str,
        *,
        event_type: Any = None,
        value_format: str = "event",
        time: Callable[[Any], Any] | str = "event",
        internal: bool = False,
    ) -> None:
        super().__init__(name)
        self.topic = topic
        self.event_type = event_type
        self.value_format = value_format
        self.time = time
        self.internal = internal


@dataclass
class SubTopology:
    index: int
    sources: list[SourceNode] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    stores: dict[str, bool] = field(default_factory=dict)

    @property
    def topics(self) -> list[str]:
        return list(dict.fromkeys(s.topic for s in self.sources))


def cut(sources: list[SourceNode]) -> list[SubTopology]:
    """Group nodes into sub-topologies: nodes connected without crossing a repartition topic
    (a RepartitionSink ends a sub-topology; the topic's source starts another)."""
    owner: dict[int, int] = {}
    groups: list[SubTopology] = []
    for source in sources:
        if id(source) in owner:
            continue
        group = SubTopology(index=len(groups))
        groups.append(group)
        stack: list[Node] = [source]
        while stack:
            node = stack.pop()
            if id(node) in owner:
                continue
            owner[id(node)] = group.index
            group.nodes.append(node)
            if isinstance(node, SourceNode):
                group.sources.append(node)
            group.stores.update(node.stores)
            stack.extend(node.children)
            # Joins: both parents' sources are one task (co-partitioned inputs).
            stack.extend(p for p in node.parents if not getattr(p, "ends_subtopology", False))
    return groups
