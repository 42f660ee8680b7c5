"""Logging in to the console with the registry's settings (:mod:`nerve.registry.auth`): HTTP
Basic with its users file, so the same ``user: password[,role ...]`` lines let a person into
both, or bearer tokens (``authentication.method=BEARER``, ``Authorization: Bearer <JWT>``)
checked by the same validator as the registry's and the broker's OAUTHBEARER, for scripts and
for an SSO proxy that adds the header.

A request without valid credentials is answered 401 with ``WWW-Authenticate: Basic
realm="..."`` (``Bearer`` for tokens) before any page runs; a user without one of
``authentication.roles``, 403. Who logged in and how is left in the scope as a :class:`Login`
(``nerve.user``): with ``kafka.principal=user`` the console reaches Kafka and the registry as
that user (:class:`nerve.console.app.Consoles`).

``/logout`` (Basic only) answers 401 with the same challenge whatever it is sent: a browser
drops the credentials it remembers for the realm when they are refused, then shows the page
saying the user is logged out.
"""

from __future__ import annotations

import html
from typing import Any, NamedTuple

from nerve.registry.auth import BasicAuth, BearerAuth, basic_credentials

LOGOUT_PATH = "/logout"


class Login(NamedTuple):
    """The logged-in user: their name, and their password (Basic) or token (Bearer)."""

    name: str
    secret: str
    bearer: bool = False


class LoginMiddleware:
    """ASGI middleware refusing requests without a user of ``auth``."""

    def __init__(self, app: Any, auth: BasicAuth | BearerAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        challenge = f'{self.auth.scheme} realm="{self.auth.realm}"'
        if isinstance(self.auth, BasicAuth):
            challenge += ', charset="UTF-8"'
            if scope["path"] == LOGOUT_PATH:
                await _logged_out(send, challenge)
                return
        if self.auth.skips(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
        user = self.auth.user(header)
        if user is None:
            await _refuse(send, 401, "Log in to see this console.", challenge)
            return
        if self.auth.roles and not self.auth.roles & user.roles:
            roles = ", ".join(sorted(self.auth.roles))
            await _refuse(send, 403, f"{user.name} has none of the roles {roles}.", None)
            return
        assert header is not None  # self.auth.user accepted it
        if isinstance(self.auth, BearerAuth):
            scope["nerve.user"] = Login(user.name, header.strip().partition(" ")[2].strip(), True)
        else:
            given = basic_credentials(header)
            assert given is not None
            scope["nerve.user"] = Login(*given)
        await self.app(scope, receive, send)


async def _logged_out(send: Any, challenge: str) -> None:
    body = (
        b"<!doctype html><title>nerve console</title>"
        b'<main><h1>Logged out</h1><p id="logged-out">You are logged out of the nerve console: '
        b"this browser no longer sends your name and password. "
        b'<a href="/">Log in again</a>.</p></main>'
    )
    await _send(send, 401, body, challenge)


async def _refuse(send: Any, status: int, message: str, challenge: str | None) -> None:
    body = (f"<!doctype html><title>nerve console</title><p>{html.escape(message)}</p>").encode()
    await _send(send, status, body, challenge)


async def _send(send: Any, status: int, body: bytes, challenge: str | None) -> None:
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
