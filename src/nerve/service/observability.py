"""What a running service tells the outside: metrics, traces, structured logs.

``Observer`` is the runtime's only window for it: the runtime calls these hooks, an observer
decides what to record. The base class records nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nerve.service.events import Meta


class Observer:
    """Hooks called by ServiceRunner; every method must be cheap (it runs per event)."""

    def started(self, service: Any) -> None:
        """The service joined its group and is about to consume."""

    @contextmanager
    def handling(self, service: str, handler: str, meta: Meta) -> Iterator[None]:
        """Around one handler call (all its attempts); ``meta`` is the triggering event's."""
        yield

    def handled(self, service: str, handler: str, meta: Meta, seconds: float) -> None:
        """A handler call succeeded after ``seconds``."""

    def failed(self, service: str, handler: str, meta: Meta, error: BaseException) -> None:
        """A handler attempt raised."""

    def dead_lettered(self, service: str, topic: str, meta: Meta | None, error: Any) -> None:
        """A record went to the dead-letter topic."""

    def consumed(self, service: str, topic: str, count: int) -> None:
        """``count`` records of ``topic`` came in (per batch)."""

    def emitted(self, service: str, topic: str, meta: Meta) -> None:
        """An event is being sent; ``meta`` may still be changed (e.g. its traceparent)."""

    def lag(self, service: str, topic: str, partition: int, records: int) -> None:
        """The consumer's lag on one partition, from time to time."""


NULL_OBSERVER = Observer()
