"""The catalog: at start each service announces what it is, consumes and emits to the compacted
``_nerve_catalog`` topic, so that tools (``nerve catalog``, the console) can draw the system."""

from __future__ import annotations

from typing import Any

CATALOG_TOPIC = "_nerve_catalog"


def announce(service: Any, config: Any, schema_ids: dict[type, int]) -> None:
    """Write the service's description to the catalog topic (filled in by issue 7's catalog)."""
