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
