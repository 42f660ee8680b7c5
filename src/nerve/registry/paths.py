"""Routing on the raw request path, so that a subject may contain ``/``.

Protobuf serializers register every imported file under a subject named by its path
(``google/type/money.proto``, ``shop/v1/common.proto``) and send it URL-encoded as ``%2F``.
ASGI servers decode the path before routing, which turns that ``%2F`` into a separator and the
route no longer matches. Confluent's Jersey matches on the encoded path and decodes each
parameter (and its Jetty is told to accept encoded separators: rest-utils ``Application``,
``setDecodeAmbiguousURIs(true)``); nerve does the same by routing on a path in which each
segment of the raw path is decoded but keeps ``/`` and ``%`` escaped, and decoding the
parameters once matched (:func:`path_param`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send


def routing_path(raw_path: str) -> str:
    """The raw path with each segment decoded except for ``/`` and ``%``."""
    segments = raw_path.split("/")
    return "/".join(
        unquote(segment, errors="replace").replace("%", "%25").replace("/", "%2F")
        for segment in segments
    )


def path_param(params: dict[str, Any], name: str) -> str:
    """A path parameter as the client meant it (``%2F`` and ``%25`` decoded)."""
    return unquote(str(params[name]))


class RawPathRouting:
    """ASGI middleware: route on :func:`routing_path` of the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%" in raw:  # without escapes the decoded path is the raw one
                scope = dict(scope)
                scope["path"] = routing_path(raw.decode("latin-1"))
        await self.app(scope, receive, send)
