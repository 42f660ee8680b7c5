"""A handler: what it consumes (an event type or a raw topic), its filter and its policy."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nerve.service.events import Event


@dataclass
class RawEvent:
    """What a handler of a plain topic (no Event class) receives: the bytes and the envelope."""

    key: bytes | None
    value: bytes | None
    meta: Any


@dataclass
class Retry:
    """Exponential backoff: ``attempts`` tries in all, waiting ``initial_s * factor**n``."""

    attempts: int = 3
    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** (attempt - 1))


@dataclass
class Handler:
    func: Callable[..., Any]
    topic: str
    event_type: type[Event] | None  # None: a raw topic handler, given RawEvent
    where: Callable[[Any], bool] | None = None
    retry: Retry = field(default_factory=Retry)
    idempotent: bool = False
    emits: tuple[type[Event], ...] = ()

    def __post_init__(self) -> None:
        # Asked per event: answered once.
        self.is_async_generator = inspect.isasyncgenfunction(self.func)

    @property
    def name(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))


def declared_emits(func: Callable[..., Any]) -> tuple[type[Event], ...]:
    """The Event classes a handler's return annotation names (``-> A | B | None``), for the
    catalog and for schema registration at start."""
    try:
        hints = inspect.get_annotations(func, eval_str=True)
    except Exception:  # an annotation that does not evaluate: nothing declared
        return ()
    found: list[type[Event]] = []

    def walk(hint: Any) -> None:
        if isinstance(hint, type) and issubclass(hint, Event) and hasattr(hint, "topic"):
            found.append(hint)
        for arg in getattr(hint, "__args__", ()) or ():
            walk(arg)

    walk(hints.get("return"))
    return tuple(dict.fromkeys(found))
