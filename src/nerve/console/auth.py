"""Logging in to the console: HTTP Basic with the registry's settings and users file
(:mod:`nerve.registry.auth`), so the same ``user: password[,role ...]`` lines let a person into
both. The browser asks for the name and password once and sends them with every request.

A request without valid credentials is answered 401 with ``WWW-Authenticate: Basic
realm="..."`` before any page runs; a user without one of ``authentication.roles``, 403. The
user's name and password are left in the scope (``nerve.user``): with ``kafka.principal=user``
the console reaches Kafka and the registry as that user (:class:`nerve.console.app.Consoles`).
"""

from __future__ import annotations

import html
from typing import Any

from nerve.registry.auth import BasicAuth, basic_credentials


class LoginMiddleware:
    """ASGI middleware refusing requests without a user of ``auth``."""

    def __init__(self, app: Any, auth: BasicAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.auth.skips(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
        user = self.auth.user(header)
        if user is None:
            challenge = f'Basic realm="{self.auth.realm}", charset="UTF-8"'
            await _refuse(send, 401, "Log in to see this console.", challenge)
            return
        if self.auth.roles and not self.auth.roles & user.roles:
            roles = ", ".join(sorted(self.auth.roles))
            await _refuse(send, 403, f"{user.name} has none of the roles {roles}.", None)
            return
        given = basic_credentials(header)
        assert given is not None  # self.auth.user accepted it
        scope["nerve.user"] = given
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, message: str, challenge: str | None) -> None:
    body = (f"<!doctype html><title>nerve console</title><p>{html.escape(message)}</p>").encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
