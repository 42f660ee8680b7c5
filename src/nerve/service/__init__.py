"""nerve's framework for event-driven services: typed events in CloudEvents envelopes,
handlers run by a consumer group named after the service, retries and dead letters, tables.

Built on confluent-kafka and never on the broker's internals, so the same services run against
nerve's broker or any Kafka cluster (``NERVE_BOOTSTRAP_SERVERS``).

``Event``, ``Meta``, ``Service`` and ``Table`` are imported on first use: the ``nerve`` command
reads light modules of this package (dead letters' headers) without paying for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerve.service.events import Event, Meta
    from nerve.service.service import Service
    from nerve.service.tables import Table

__all__ = ["Event", "Meta", "Service", "Table"]
_HOMES = {
    "Event": "nerve.service.events",
    "Meta": "nerve.service.events",
    "Service": "nerve.service.service",
    "Table": "nerve.service.tables",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nerve.service' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
