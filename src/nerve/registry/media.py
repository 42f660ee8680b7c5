"""Content negotiation as Confluent's resources do it (JAX-RS ``@Produces``/``@Consumes``).

Every Confluent resource produces ``application/vnd.schemaregistry.v1+json`` (server quality
1), ``application/vnd.schemaregistry+json`` (0.9) and ``application/json`` (0.5), and consumes
those three plus ``application/octet-stream``, the type JAX-RS assumes for a body sent without
one (``client/rest/Versions.java``). Jersey picks the produced type the client rates highest,
then the one the server rates highest; nothing acceptable is 406, a body type outside the list
is 415. Hand-written because Starlette has no negotiation; it is a few lines.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

V1_JSON = "application/vnd.schemaregistry.v1+json"
DEFAULT_JSON = "application/vnd.schemaregistry+json"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

# What the API answers in, with the server's quality (Jersey's ``qs``), best first.
PRODUCED: tuple[tuple[str, float], ...] = ((V1_JSON, 1.0), (DEFAULT_JSON, 0.9), (JSON, 0.5))
CONSUMED = frozenset({V1_JSON, DEFAULT_JSON, JSON, OCTET_STREAM})


def _media_ranges(accept: str) -> Iterator[tuple[str, str, float]]:
    """``(type, subtype, q)`` for each range of an Accept header; malformed ones are skipped."""
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        kind, _, subtype = parts[0].lower().partition("/")
        if not kind or not subtype:
            continue
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        yield kind, subtype, min(max(q, 0.0), 1.0)


@functools.lru_cache(maxsize=256)  # clients send the same few Accept headers over and over
def negotiate(accept: str | None) -> str | None:
    """The media type to answer a request with this Accept header; None means 406.

    For each produced type the most specific matching range sets the client's quality (RFC
    9110, 12.5.1), so ``application/json;q=0`` rules JSON out even beside ``*/*``.
    """
    if accept is None or not accept.strip():
        return V1_JSON
    ranges = list(_media_ranges(accept))
    best: tuple[float, float, str] | None = None
    for produced, qs in PRODUCED:
        kind, subtype = produced.split("/")
        matches = [
            (specificity, q)
            for r_kind, r_subtype, q in ranges
            for specificity in [_specificity(r_kind, r_subtype, kind, subtype)]
            if specificity >= 0
        ]
        if not matches:
            continue
        q = max(matches)[1]
        if q > 0 and (best is None or (q, qs) > best[:2]):
            best = (q, qs, produced)
    return best[2] if best else None


def _specificity(r_kind: str, r_subtype: str, kind: str, subtype: str) -> int:
    """2 for an exact range, 1 for ``type/*``, 0 for ``*/*``, -1 when it does not match."""
    if r_kind == "*" and r_subtype == "*":
        return 0
    if r_kind != kind:
        return -1
    if r_subtype == "*":
        return 1
    return 2 if r_subtype == subtype else -1


def consumable(content_type: str | None) -> bool:
    """Whether a request body of this Content-Type is read (absent: octet-stream, accepted)."""
    if content_type is None or not content_type.strip():
        return True
    return content_type.split(";")[0].strip().lower() in CONSUMED
