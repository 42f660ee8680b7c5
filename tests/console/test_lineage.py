"""The lineage graph is laid out from catalog records alone: layers follow the flow of events,
and a cycle (a service keeping a table of its own output) does not stretch the drawing."""

from __future__ import annotations

from typing import Any

from nerve.console import lineage
from nerve.service import catalog


def service(name: str, consumes: list[str], emits: list[str], tables: list[str] = ()) -> Any:  # type: ignore[assignment]
    return {
        "name": name,
        "consumes": [{"topic": t, "type": t, "event": t.title()} for t in consumes],
        "emits": [{"topic": t, "type": t, "event": t.title()} for t in emits],
        "tables": [{"name": t, "topic": t, "type": t} for t in tables],
    }


def test_layers_follow_the_events_and_cycles_stay_short() -> None:
    services = {
        "ledger": service("ledger", ["payments"], ["balances"], tables=["balances"]),
        "alerts": service("alerts", ["balances"], ["alerts"]),
        "mailer": service("mailer", ["alerts"], []),
    }
    graph = lineage.graph(services, catalog.events(services))
    ranks = {node.id: node.rank for node in graph.nodes.values()}
    assert ranks == {
        "e:payments:payments": 0,
        "s:ledger": 1,
        "e:balances:balances": 2,
        "s:alerts": 3,
        "e:alerts:alerts": 4,
        "s:mailer": 5,
    }
    assert ("e:balances:balances", "s:ledger", "table") in graph.edges  # drawn, dashed
    drawing = lineage.svg(graph)
    assert drawing.count('class="edge') == len(graph.edges)
    assert 'href="/catalog/services/alerts"' in drawing
    assert graph.width < 6 * (lineage.NODE_W + lineage.GAP_X) + 40


def test_a_connectors_database_is_a_node_before_a_source_and_after_a_sink() -> None:
    source = service("cdc:legacy", [], ["legacy.public.stock"])
    source["connector"] = {"type": "source", "database": "postgresql://db:5432/warehouse"}
    sink = service("connect:archive", ["warehouse.stock-levels"], [])
    sink["connector"] = {"type": "sink", "database": "jdbc:postgresql://dw:5432/archive"}
    services = {
        "cdc:legacy": source,
        "warehouse": service("warehouse", ["legacy.public.stock"], ["warehouse.stock-levels"]),
        "connect:archive": sink,
    }
    graph = lineage.graph(services, catalog.events(services))
    ranks = {node.id: node.rank for node in graph.nodes.values()}
    assert ranks["d:postgresql://db:5432/warehouse"] == 0
    assert ranks["s:cdc:legacy"] == 1
    assert ranks["s:warehouse"] == 3
    assert ranks["d:jdbc:postgresql://dw:5432/archive"] == ranks["s:connect:archive"] + 1
    assert ("d:postgresql://db:5432/warehouse", "s:cdc:legacy", "reads") in graph.edges
    assert ("s:connect:archive", "d:jdbc:postgresql://dw:5432/archive", "writes") in graph.edges
    node = graph.nodes["d:postgresql://db:5432/warehouse"]
    assert (node.kind, node.label, node.sub) == ("database", "warehouse", "postgresql")
    assert 'class="node database"' in lineage.svg(graph)
