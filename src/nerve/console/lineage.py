"""The catalog and the lineage graph: what every service announced to ``_nerve_catalog``
(description, owner, what it consumes and emits, its tables and internal topics), drawn as a
graph of services and the events between them, laid out in layers from the records alone
(nothing drawn by hand); each event type with its schema, producers, consumers and a recent
example; the AsyncAPI document of it all."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError
from nerve.service import catalog

_CACHE_S = 3.0  # the catalog topic is re-read at most this often


class Catalog:
    """The catalog topic, re-read when older than a few seconds."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._read_at = 0.0
        self._services: dict[str, dict[str, Any]] = {}

    def services(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._read_at > _CACHE_S:
            try:
                self._services = catalog.read(self.cluster.config.kafka(), self.cluster.timeout)
            except catalog.CatalogError as exc:
                raise ConsoleError(f"cannot read {catalog.CATALOG_TOPIC}: {exc}", 502) from None
            self._read_at = time.monotonic()
        return self._services

    def events(self) -> list[dict[str, Any]]:
        return catalog.events(self.services())

    def asyncapi(self) -> dict[str, Any]:
        return catalog.asyncapi(self.services(), self.cluster.config.bootstrap_servers)

    def service(self, name: str) -> dict[str, Any]:
        found = self.services().get(name)
        if found is None:
            raise ConsoleError(f"no service {name} in {catalog.CATALOG_TOPIC}", 404)
        return found

    def event(self, topic: str, event_type: str | None) -> dict[str, Any]:
        """An event type: who emits and consumes it, and its contract as its emitter (or a
        consumer) announced it."""
        row = next(
            (e for e in self.events() if e["topic"] == topic and e["type"] == event_type), None
        )
        if row is None:
            raise ConsoleError(f"no event {event_type} on {topic} in the catalog", 404)
        contract: dict[str, Any] | None = None
        for service in self.services().values():
            for emit in service.get("emits", []):
                if emit["topic"] == topic and emit.get("type") == event_type:
                    contract = emit
            if contract is None:
                for consume in service.get("consumes", []):
                    if consume["topic"] == topic and consume.get("type") == event_type:
                        contract = consume
        return {**row, "contract": contract or {}}


def internal_topics(service: dict[str, Any], all_topics: list[str]) -> list[str]:
    """The topics a service owns besides its events: dead letters of what it reads, its
    tables' and streams' changelogs and repartition topics (named after the service)."""
    name = service["name"]
    consumed = {c["topic"] for c in service.get("consumes", [])}
    found = [t for t in all_topics if t.startswith((f"{name}-", f"{name}.", f"_{name}"))]
    found += [t + ".dlq" for t in sorted(consumed) if t + ".dlq" in all_topics]
    return sorted(set(found))


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class Node:
    id: str
    kind: str  # service, event, or database (a connector's, outside Kafka)
    label: str
    sub: str  # the topic of an event, the owner of a service
    href: str
    rank: int = 0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # from, to, style
    width: float = 0.0
    height: float = 0.0


NODE_W, NODE_H, GAP_X, GAP_Y = 176.0, 44.0, 46.0, 18.0


def graph(services: dict[str, dict[str, Any]], events: list[dict[str, Any]]) -> Graph:
    from urllib.parse import urlencode

    g = Graph()
    names: dict[tuple[str, str | None], str] = {}  # (topic, type) -> the event's class name
    for service in services.values():
        for entry in [*service.get("consumes", []), *service.get("emits", [])]:
            if entry.get("event"):
                names.setdefault((entry["topic"], entry.get("type")), entry["event"])
    for name, service in services.items():
        g.nodes[f"s:{name}"] = Node(
            f"s:{name}",
            "service",
            name,
            service.get("owner") or "",
            f"/catalog/services/{name}",
        )
    for name, service in services.items():
        # A connector's (or nerve cdc's) database or file, drawn as a node of its own: data
        # flows from it into a source's topics, from a sink's topics into it.
        where = (service.get("connector") or {}).get("database")
        if not where:
            continue
        node_id = f"d:{where}"
        scheme, _, rest = where.partition("://")
        g.nodes.setdefault(
            node_id,
            Node(node_id, "database", rest.rsplit("/", 1)[-1] or where, scheme,
                 f"/catalog/services/{name}"),
        )  # fmt: skip
        sink = (service.get("connector") or {}).get("type") == "sink"
        g.edges.append(
            (f"s:{name}", node_id, "writes") if sink else (node_id, f"s:{name}", "reads")
        )
    for event in events:
        node_id = f"e:{event['topic']}:{event['type']}"
        query = urlencode({"topic": event["topic"], "type": event["type"] or ""})
        label = names.get((event["topic"], event["type"])) or event["type"] or "(any record)"
        g.nodes[node_id] = Node(node_id, "event", label, event["topic"], f"/catalog/event?{query}")
        for emitter in event["emitted_by"]:
            g.edges.append((f"s:{emitter}", node_id, "emits"))
        for consumer in event["consumed_by"]:
            table = any(
                t.get("topic") == event["topic"] for t in services[consumer].get("tables", [])
            ) and not any(
                c["topic"] == event["topic"] for c in services[consumer].get("consumes", [])
            )
            g.edges.append((node_id, f"s:{consumer}", "table" if table else "consumes"))
    _layout(g)
    return g


def _back_edges(g: Graph) -> set[tuple[str, str]]:
    """Edges that close a cycle (a service keeping a table of its own output), found by a
    depth-first walk from the sources; the layout ranks nodes without them."""
    outgoing: dict[str, list[str]] = {n: [] for n in g.nodes}
    has_input: set[str] = set()
    for source, target, _ in g.edges:
        outgoing[source].append(target)
        has_input.add(target)
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    back: set[tuple[str, str]] = set()
    roots = [n for n in sorted(g.nodes) if n not in has_input] + sorted(g.nodes)
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(outgoing[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(outgoing[child])))
    return back


def _layout(g: Graph) -> None:
    """Layers by longest path from the sources, cycles broken at their back edges, then each
    layer sorted by the mean position of its inputs."""
    back = _back_edges(g)
    incoming: dict[str, list[str]] = {n: [] for n in g.nodes}
    for source, target, _ in g.edges:
        if (source, target) not in back:
            incoming[target].append(source)
    for _ in range(len(g.nodes)):
        changed = False
        for node_id, node in g.nodes.items():
            rank = max((g.nodes[s].rank + 1 for s in incoming[node_id]), default=0)
            if rank > node.rank:
                node.rank, changed = rank, True
        if not changed:
            break
    layers: dict[int, list[Node]] = {}
    for node in g.nodes.values():
        layers.setdefault(node.rank, []).append(node)
    position: dict[str, float] = {}
    for rank in sorted(layers):
        layer = layers[rank]

        def weight(node: Node) -> tuple[float, str]:
            above = [position[s] for s in incoming[node.id] if s in position]
            return (sum(above) / len(above) if above else 0.0, node.label)

        layer.sort(key=weight)
        for i, node in enumerate(layer):
            node.x = 20 + rank * (NODE_W + GAP_X)
            node.y = 36 + i * (NODE_H + GAP_Y)
            position[node.id] = float(i)
    g.width = 40 + (max(layers, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    g.height = 56 + max((len(v) for v in layers.values()), default=1) * (NODE_H + GAP_Y)


def svg(g: Graph) -> str:
    """The graph as inline SVG: services as boxes, events as rounded pills, arrows between
    them (dashed where a service keeps a table of the topic); every node links to its page."""
    parts = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="100%" '
        f'style="max-width: {g.width:.0f}px" viewBox="0 0 {g.width:.0f} {g.height:.0f}" role="img" '
        'aria-label="services and the events between them">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#667"/></marker></defs>',
    ]
    for source, target, style in g.edges:
        a, b = g.nodes[source], g.nodes[target]
        x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
        x2, y2 = b.x, b.y + NODE_H / 2
        if b.x <= a.x:  # an edge back (a cycle): around the top
            x1, x2 = a.x + NODE_W / 2, b.x + NODE_W / 2
            y1, y2 = a.y, b.y
            mid = min(a.y, b.y) - 30
            d = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"
        else:
            c = (x1 + x2) / 2
            d = f"M{x1:.0f},{y1:.0f} C{c:.0f},{y1:.0f} {c:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        dash = ' stroke-dasharray="5,4"' if style == "table" else ""
        parts.append(
            f'<path class="edge {style}" d="{d}" fill="none" stroke="#667" stroke-width="1.4"'
            f'{dash} marker-end="url(#arrow)"><title>{html.escape(a.label)} {style} '
            f"{html.escape(b.label)}</title></path>"
        )
    for node in g.nodes.values():
        radius = {"event": 22, "database": 12}.get(node.kind, 4)
        fill = {"event": "#e8f1fb", "database": "#e9f5e9"}.get(node.kind, "#fff4e0")
        label = node.label if len(node.label) <= 26 else node.label[:25] + "…"
        sub = node.sub if len(node.sub) <= 30 else node.sub[:29] + "…"
        parts.append(
            f'<a href="{html.escape(node.href)}" class="node {node.kind}" '
            f'data-node="{html.escape(node.id)}">'
            f'<rect x="{node.x:.0f}" y="{node.y:.0f}" width="{NODE_W:.0f}" height="{NODE_H:.0f}" '
            f'rx="{radius}" fill="{fill}" stroke="#556"/>'
            f'<text x="{node.x + NODE_W / 2:.0f}" y="{node.y + 18:.0f}" text-anchor="middle" '
            f'font-size="13" font-weight="600">{html.escape(label)}</text>'
            f'<text x="{node.x + NODE_W / 2:.0f}" y="{node.y + 34:.0f}" text-anchor="middle" '
            f'font-size="11" fill="#556">{html.escape(sub)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def example(
    cluster: Cluster, decoder: Any, topic: str, event_type: str | None, look_back: int = 200
) -> Any:
    """The newest record of ``topic`` whose ``ce_type`` is ``event_type`` among the last
    ``look_back`` of each partition, decoded; None when there is none."""
    from nerve.console.decoding import record
    from nerve.console.messages import read_range

    try:
        metadata = cluster.topic(topic)
    except ConsoleError:
        return None
    marks = cluster.watermarks(topic, sorted(metadata.partitions))
    start = {p: max(low, high - look_back) for p, (low, high) in marks.items()}
    stop = {p: high for p, (_, high) in marks.items()}

    def typed(message: Any) -> Any:
        for name, raw in message.headers() or ():
            if name == "ce_type":
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                return message if event_type is None or text == event_type else None
        return message if event_type is None else None

    found = [m for m in read_range(cluster, topic, start, stop, look_back, typed) if m]
    if not found:
        return None
    newest = max(found, key=lambda m: m.timestamp()[1])
    return record(decoder, newest)
