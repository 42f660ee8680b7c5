"""A minimal blocking Kafka client built on kio, for asserting exact error codes.

Real clients hide most protocol errors (they retry or rejoin); tests that must see the error a
broker answers (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, ...) send kio requests with this.
"""

from __future__ import annotations

import collections
import io
import itertools
import socket
import struct
from typing import Any

from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

_SIZE = struct.Struct(">i")


class KioClient:
    """One connection; ``call(request)`` sends a kio request object and returns the response."""

    def __init__(self, bootstrap: str, client_id: str = "kio-test", timeout: float = 30) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.client_id = client_id
        self._ids = itertools.count(1)
        self._sent: collections.deque[int] = collections.deque()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> KioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, request: Any) -> Any:
        self.send(request)
        return self.receive(type(request))

    def send(self, request: Any) -> int:
        correlation_id = next(self._ids)
        self._sent.append(correlation_id)
        cls = type(request)
        buffer = io.BytesIO()
        header_cls = RequestHeaderV2 if cls.__flexible__ else RequestHeaderV1
        entity_writer(header_cls)(
            buffer,
            header_cls(
                request_api_key=cls.__api_key__,
                request_api_version=cls.__version__,
                correlation_id=correlation_id,
                client_id=self.client_id,
            ),
        )
        entity_writer(cls)(buffer, request)
        payload = buffer.getvalue()
        self.sock.sendall(_SIZE.pack(len(payload)) + payload)
        return correlation_id

    def receive(self, request_cls: type) -> Any:
        (size,) = _SIZE.unpack(self._read(4))
        payload = self._read(size)
        response_cls = _response_class(request_cls)
        header_cls = response_cls.__header_schema__
        header, pos = entity_reader(header_cls)(payload, 0)
        expected = self._sent.popleft()
        assert header.correlation_id == expected, (header.correlation_id, expected)
        body, _ = entity_reader(response_cls)(payload, pos)
        return body

    def _read(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks += chunk
        return bytes(chunks)


def _response_class(request_cls: type) -> type:
    import importlib

    module = importlib.import_module(request_cls.__module__.rsplit(".", 1)[0] + ".response")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and value.__module__ == module.__name__
            and getattr(value, "__type__", None) == EntityType.response
        ):
            return value
    raise LookupError(f"no response class for {request_cls.__name__}")


def await_group_coordinator(bootstrap: str, timeout: float = 60.0) -> None:
    """Block until the broker coordinates groups (Kafka creates __consumer_offsets lazily, on
    the first FindCoordinator, and answers NOT_COORDINATOR until it is loaded)."""
    import time

    from kio.schema.describe_groups.v5.request import DescribeGroupsRequest
    from kio.schema.errors import ErrorCode
    from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
    from kio.static.primitive import i8

    # Enough group ids to land in every partition of a 50-partition offsets topic.
    probes = tuple(f"warm-up-{i}" for i in range(400))
    transient = {
        ErrorCode.not_coordinator,
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
    }
    deadline = time.monotonic() + timeout
    with KioClient(bootstrap) as client:
        while True:
            found = client.call(
                FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("warm-up",))
            )
            if found.coordinators[0].error_code == ErrorCode.none:
                described = client.call(
                    DescribeGroupsRequest(groups=probes, include_authorized_operations=False)
                )
                if not any(g.error_code in transient for g in described.groups):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no group coordinator at {bootstrap} after {timeout}s")
            time.sleep(0.2)
