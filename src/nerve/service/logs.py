"""Structured logs: one JSON object per line, and the triggering event's correlation id on every
line logged while a handler runs, whoever logs it (the runtime, or the handler with the standard
``logging`` module).

The ids travel in a context variable that ``handling_context`` sets around a handler call (the
``LogContextObserver`` does it for the runtime); ``EventContextFilter`` copies them onto each
record, and ``JsonFormatter`` writes them out.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from nerve.service.events import Meta

# (service, handler, the triggering event's meta) of the handler call running in this context.
_current: ContextVar[tuple[str, str, Meta] | None] = ContextVar("nerve_handling", default=None)

EXTRAS = ("service", "correlation_id", "event_id", "handler")
"""The record attributes ``JsonFormatter`` writes when a record has them."""


class handling_context:  # lower case: used as a function, ``with handling_context(...)``
    """Within it, log records carry this handler call's service, handler and event ids.

    A class rather than a generator: it runs around every handler call, and this costs a third.
    """

    __slots__ = ("current", "previous")

    def __init__(self, service: str, handler: str, meta: Meta) -> None:
        self.current = (service, handler, meta)
        self.previous: tuple[str, str, Meta] | None = None

    def __enter__(self) -> None:
        self.previous = _current.get()
        _current.set(self.current)

    def __exit__(self, *exc: object) -> None:
        # Restored by value, not by token: the runtime may finish a suspended handler in
        # another context than the one it started in, where resetting a token raises.
        _current.set(self.previous)


class EventContextFilter(logging.Filter):
    """Adds ``service``, ``handler``, ``correlation_id`` and ``event_id`` to the records logged
    inside a handler call; values given with ``extra=`` win. Put it on a handler (not a logger)
    so that it sees the records of every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get()
        if current is not None:
            service, handler, meta = current
            fields = record.__dict__
            fields.setdefault("service", service)
            fields.setdefault("handler", handler)
            fields.setdefault("correlation_id", meta.correlation_id or meta.id)
            fields.setdefault("event_id", meta.id)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    the event fields of ``EXTRAS`` when present, and ``exception`` with its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for name in EXTRAS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


QUIET_LOGGERS = ("httpx", "httpx2", "httpcore")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(
    level: str | int = "INFO", log_format: str = "text", stream: TextIO | None = None
) -> None:
    """Log to ``stream`` (stderr by default) as ``text`` or ``json`` lines, for the whole
    process (the root logger's handlers are replaced)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(EventContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif log_format == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise ValueError(f"unknown log format {log_format!r}: text or json")
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Dependencies' INFO lines (the registry client logs every HTTP request) are noise at
    # INFO; they show at DEBUG.
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
