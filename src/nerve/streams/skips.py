"""Records a stream skips or sets aside (null keys, late records, rows a join cannot use), said
in the log without a line per record: one bad producer can send millions, and a line each
would bury everything else and cost more than the processing.

The first skip of a kind (node, input topic, reason) is logged at once; later ones are counted
and said in one line per ``INTERVAL_S`` (how many since the last line, how many in all, the
latest one's detail). What is still uncounted is said when the engine closes, so no skip goes
unsaid.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("nerve.streams")

INTERVAL_S = 10.0


@dataclass
class _Kind:
    total: int = 0
    unsaid: int = 0
    said_at: float = float("-inf")
    detail: str = ""


_kinds: dict[tuple[str, str, str], _Kind] = {}


def skipped(node: str, origin: str | None, reason: str, detail: str = "") -> None:
    """One record of ``origin`` that ``node`` skipped for ``reason`` (a phrase: "has a null
    key"); ``detail`` says which (a position, a window)."""
    kind = _kinds.setdefault((node, origin or "?", reason), _Kind())
    kind.total += 1
    kind.unsaid += 1
    kind.detail = detail
    now = time.monotonic()
    if now - kind.said_at >= INTERVAL_S:
        _say(node, origin or "?", reason, kind, now)


def flush(*, due_only: bool = False) -> None:
    """Says every count not said yet (on close); ``due_only``: only those whose last line is
    ``INTERVAL_S`` old (after each commit, so a burst that stopped is still said in time)."""
    now = time.monotonic()
    for (node, origin, reason), kind in _kinds.items():
        if kind.unsaid and (not due_only or now - kind.said_at >= INTERVAL_S):
            _say(node, origin, reason, kind, now)


def _say(node: str, origin: str, reason: str, kind: _Kind, now: float) -> None:
    log.warning(
        "%s: %d record(s) of %s %s since the last such line (%d in all)%s",
        node,
        kind.unsaid,
        origin,
        reason,
        kind.total,
        f"; latest: {kind.detail}" if kind.detail else "",
    )
    kind.unsaid = 0
    kind.said_at = now
