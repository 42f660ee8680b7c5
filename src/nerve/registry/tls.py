"""Client certificates on the registry's HTTPS listener (Confluent's
``ssl.client.authentication``): uvicorn checks them against the truststore during the TLS
handshake; this module hands each connection's certificate to the application and names the
principal by its subject, as the broker names a TLS client (``ssl.principal.mapping.rules``,
:mod:`nerve.security.ssl_principal`), so per-subject ACLs can name certificate holders.

uvicorn does not put the peer certificate in the ASGI scope: :func:`protocol_class` is
uvicorn's HTTP protocol keeping it in the connection's copy of the app state, which every
request's ``scope["state"]`` is copied from.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nerve.security.ssl_principal import NoMatchingRule, SslPrincipalMapper, subject_name

log = logging.getLogger("nerve.registry")

PEER_CERTIFICATE = "nerve.peer_certificate"


def protocol_class() -> type:
    """uvicorn's HTTP protocol, with the client certificate (DER) of each TLS connection in
    its requests' ``scope["state"][PEER_CERTIFICATE]``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class PeerCertificateProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:
                self.app_state = {**self.app_state, PEER_CERTIFICATE: der}  # type: ignore[has-type]

    return PeerCertificateProtocol


class CertificateMiddleware:
    """ASGI middleware naming the principal of a request by its connection's certificate
    (``nerve.principal``; authentication set up with ``authentication.method`` runs inside
    and names it instead). A certificate no mapping rule matches is answered 401."""

    def __init__(self, app: Any, mapper: SslPrincipalMapper) -> None:
        self.app = app
        self.mapper = mapper

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        der = scope.get("state", {}).get(PEER_CERTIFICATE) if scope["type"] == "http" else None
        if der is not None:
            subject = subject_name(der)
            try:
                scope["nerve.principal"] = self.mapper.name(subject)
            except NoMatchingRule:
                log.info("registry: no ssl.principal.mapping.rules rule matches %s", subject)
                body = json.dumps({"error_code": 401, "message": "Unauthorized"}).encode()
                headers = [
                    (b"content-type", b"application/vnd.schemaregistry.v1+json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
