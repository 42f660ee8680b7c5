"""Kafka Connect and change data capture for nerve services: Debezium's change events as typed
events (``ChangeEvent[Model]``), the outbox (``nerve.connect.outbox``), and a client of
Connect's REST API behind ``nerve connect``.

Depends on the service framework and on Connect's REST API only, never on the broker: the same
code runs against connectors on any Kafka.

``ChangeEvent`` and ``Source`` are imported on first use, so ``nerve connect`` does not pay
for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerve.connect.changes import ChangeEvent, Source
    from nerve.connect.rest import ConnectClient, ConnectRestError

__all__ = ["ChangeEvent", "ConnectClient", "ConnectRestError", "Source"]
_HOMES = {
    "ChangeEvent": "nerve.connect.changes",
    "Source": "nerve.connect.changes",
    "ConnectClient": "nerve.connect.rest",
    "ConnectRestError": "nerve.connect.rest",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nerve.connect' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
