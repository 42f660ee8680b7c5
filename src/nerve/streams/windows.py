"""Window definitions, as Kafka Streams defines them.

- ``tumbling(size)``: fixed, non-overlapping windows ``[start, start + size)`` aligned to the
  epoch.
- ``hopping(size, advance)``: fixed windows of ``size`` starting every ``advance``; a record
  belongs to ``size / advance`` of them.
- ``sliding(size)``: windows of ``size`` whose bounds follow the records (Kafka Streams'
  SlidingWindows): every distinct set of records no more than ``size`` apart is one window,
  ``[start, end]`` inclusive.
- ``session(gap)``: per-key activity sessions; records closer than ``gap`` merge into one
  session ``[first, last]``.

A window closes when stream time passes its end plus the grace period; records arriving later
are late (never silently dropped: see ``late``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


def _ms(value: timedelta | int | float) -> int:
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


@dataclass(frozen=True)
class TimeWindows:
    """Tumbling (``advance == size``) or hopping windows."""

    size: int
    advance: int
    kind: str = "tumbling"

    def starts_for(self, timestamp: int) -> list[int]:
        """The start of every window containing ``timestamp``, oldest first."""
        first = max(0, timestamp - self.size + self.advance)
        first -= first % self.advance
        return list(range(first, timestamp + 1, self.advance))


@dataclass(frozen=True)
class SlidingWindows:
    size: int
    kind: str = "sliding"


@dataclass(frozen=True)
class SessionWindows:
    gap: int
    kind: str = "session"


WindowSpec = TimeWindows | SlidingWindows | SessionWindows


def tumbling(size: timedelta | int) -> TimeWindows:
    """Non-overlapping windows of ``size`` (a timedelta, or milliseconds)."""
    ms = _ms(size)
    if ms <= 0:
        raise ValueError("a window's size must be positive")
    return TimeWindows(ms, ms, "tumbling")


def hopping(size: timedelta | int, advance: timedelta | int) -> TimeWindows:
    """Windows of ``size`` starting every ``advance`` (no more than ``size``)."""
    ms, step = _ms(size), _ms(advance)
    if ms <= 0 or step <= 0 or step > ms:
        raise ValueError("a hopping window needs 0 < advance <= size")
    return TimeWindows(ms, step, "hopping")


def sliding(size: timedelta | int) -> SlidingWindows:
    """Windows of records at most ``size`` apart (Kafka Streams' sliding windows)."""
    ms = _ms(size)
    if ms <= 0:
        raise ValueError("a window's size must be positive")
    return SlidingWindows(ms)


def session(gap: timedelta | int) -> SessionWindows:
    """Per-key sessions: records less than ``gap`` apart (inclusive) are one session."""
    ms = _ms(gap)
    if ms <= 0:
        raise ValueError("a session's inactivity gap must be positive")
    return SessionWindows(ms)


def ms(value: timedelta | int | float | None, default: int = 0) -> int:
    return default if value is None else _ms(value)
