"""``Aggregate``: state folded from its own events, and the commands that decide them."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from nerve.service.events import Event

F = TypeVar("F", bound=Callable[..., Any])


class Rejected(Exception):
    """A command the aggregate refuses: the reason goes back to the sender."""


def command(func: F) -> F:
    """Marks an aggregate's method as the handler of the command type its parameter names;
    it returns the events it decides (one, a list, or None) or raises ``Rejected``."""
    func.__nerve_command__ = True  # type: ignore[attr-defined]
    return func


class Aggregate(BaseModel):
    """Base class of aggregates: ``class Order(Aggregate, key="order_id")``. Fields are the
    state (with defaults: a new aggregate starts from them); ``apply(event)`` folds an event
    into it. ``key`` names the field of every command that says which aggregate it is for
    (commands are keyed by it, so they reach the replica that owns the aggregate)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    key_field: ClassVar[str] = "id"
    commands: ClassVar[dict[type[Event], str]] = {}
    # Where its snapshots go (``@service.aggregate(snapshot_every=N)``; None: no snapshots).
    snapshot_topic: ClassVar[str | None] = None

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is not None:
            cls.key_field = key

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        found: dict[type[Event], str] = {}
        for name, member in vars(cls).items():
            if not getattr(member, "__nerve_command__", False):
                continue
            hints = typing.get_type_hints(member)
            params = [h for n, h in hints.items() if n != "return"]
            if len(params) != 1 or not (
                isinstance(params[0], type) and issubclass(params[0], Event)
            ):
                raise TypeError(
                    f"{cls.__name__}.{name}: a command handler takes one command, an Event "
                    "type named in its annotation"
                )
            found[params[0]] = name
        cls.commands = found

    def apply(self, event: Event) -> None:
        """Fold ``event`` into the state (override; the default does nothing)."""

    @classmethod
    def emits(cls) -> list[type[Event]]:
        """The event types the command handlers declare they return."""
        out: list[type[Event]] = []
        for name in cls.commands.values():
            hint = typing.get_type_hints(getattr(cls, name)).get("return")
            for item in declared_events(hint):
                if item not in out:
                    out.append(item)
        return out


def declared_events(hint: Any) -> list[type[Event]]:
    """The Event types a handler's return annotation names, however nested: ``A``,
    ``A | None``, ``list[A]``, ``list[A | B]``, ``A | list[B]``."""
    if isinstance(hint, type) and issubclass(hint, Event):
        return [hint]
    return [item for arg in typing.get_args(hint) for item in declared_events(arg)]
