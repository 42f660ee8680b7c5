"""SASL on the wire with kio, for the exact error codes and messages a broker answers."""

from __future__ import annotations

from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from tests.broker._kio_client import KioClient


def handshake(client: KioClient, mechanism: str) -> object:
    return client.call(SaslHandshakeRequest(mechanism=mechanism))


def authenticate(client: KioClient, token: bytes) -> object:
    return client.call(SaslAuthenticateRequest(auth_bytes=token))


def closed_by_peer(client: KioClient, timeout: float = 10) -> bool:
    """Whether the broker closes the connection (end-of-stream within ``timeout``; an error
    response it sends first, as Kafka does for a request during SASL, is read past)."""
    client.sock.settimeout(timeout)
    try:
        while True:
            data = client.sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
