"""``nerve registry`` on a secure broker (``Platform(secure=True)``: SASL_SSL, ACLs on): its own
Kafka client takes the security settings every nerve command takes (``-F FILE``), so schemas
are read and written as the admin over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
