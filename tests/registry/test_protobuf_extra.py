"""Protobuf support is the ``protobuf`` extra: without grpcio-tools the registry says so, naming
the extra, instead of failing with an import error."""

from __future__ import annotations

import sys

import pytest

from nerve.registry import errors, registry


def test_a_protobuf_schema_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc_tools", None)  # import grpc_tools: ImportError
    with pytest.raises(errors.RegistryError) as refused:
        registry._parser("PROTOBUF")
    assert "pip install 'nerve[protobuf]'" in refused.value.message
    # Avro and JSON Schema need nothing more.
    assert registry._parser("AVRO") and registry._parser("JSON")
