"""nerve: an event-driven platform for Python teams.

Components (one folder each): ``protocol`` (Kafka wire protocol, no I/O), ``broker`` (the
embedded Kafka-compatible broker), ``registry`` (the schema registry), ``service`` (the
framework for event-driven services), ``cli`` (the ``nerve`` command).

``from nerve import Service, Event, Table`` is the framework's public surface; it is imported
on first use, so that ``nerve broker`` does not pay for pydantic at start.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types for checkers; imported lazily at run time
    from nerve.service import Event, Meta, Service, Table

__version__ = "0.1.0"
__all__ = ["Event", "Meta", "Service", "Table"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import nerve.service

        return getattr(nerve.service, name)
    raise AttributeError(f"module 'nerve' has no attribute {name!r}")
