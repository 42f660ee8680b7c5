"""``nerve registry`` on a secure broker (``Platform(secure=True)``: SASL_SSL, ACLs on): its own
Kafka client takes the security settings every nerve command takes (``-F FILE``), so schemas
are read and written as the admin over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from nerve.testing import Platform
from tests._registry import RegistryProcess

AVRO = '{"type":"record","name":"Secure","fields":[{"name":"id","type":"string"}]}'


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform(secure=True) as secure:
        yield secure


def test_the_registry_uses_the_client_properties_file(platform: Platform, tmp_path: Path) -> None:
    assert platform.security is not None
    properties = str(platform.security.admin_properties)
    proc = RegistryProcess(tmp_path / "registry", platform.bootstrap, args=["-F", properties])
    try:
        proc.start()
        client = SchemaRegistryClient({"url": proc.url})
        schema_id = client.register_schema("secure-value", Schema(AVRO, "AVRO"))
        assert client.get_schema(schema_id).schema_str == AVRO
        # A second instance (a restart) reads it back from _schemas over SASL_SSL.
        proc.restart()
        assert SchemaRegistryClient({"url": proc.url}).get_subjects() == ["secure-value"]
    finally:
        proc.close()


def test_tls_on_the_http_listener(platform: Platform, tmp_path: Path) -> None:
    """ssl.keystore.location (PEM) serves HTTPS: confluent-kafka's client with the CA works,
    plain HTTP on that port does not."""
    assert platform.security is not None
    settings = {"ssl.keystore.location": str(platform.security.keystore)}
    args = ["-F", str(platform.security.admin_properties)]
    proc = RegistryProcess(tmp_path / "registry", platform.bootstrap, "_schemas", settings, args)
    try:
        proc.start()
        url = f"https://127.0.0.1:{proc.port}"
        client = SchemaRegistryClient({"url": url, "ssl.ca.location": str(platform.security.ca)})
        schema_id = client.register_schema("tls-value", Schema(AVRO, "AVRO"))
        assert client.get_schema(schema_id).schema_str == AVRO
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{proc.port}/subjects", timeout=10)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(url + "/subjects", timeout=10)
    finally:
        proc.close()
