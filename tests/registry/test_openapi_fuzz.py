"""schemathesis fuzzes every operation of the registry's own OpenAPI document: no request may
get a 5xx, and every answer must match what the document says (status, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests._broker import BrokerProcess
from tests._registry import RegistryProcess


@pytest.fixture(scope="module")
def fuzzed_registry(
    shared_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    root: Path = tmp_path_factory.mktemp("fuzzed-registry")
    proc = RegistryProcess(root, shared_broker.bootstrap, topic="_schemas-fuzz")
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.mark.slow
def test_every_operation_answers_as_documented(fuzzed_registry: RegistryProcess) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9, so each operation's
    # strategy is driven by hypothesis directly. The checks are schemathesis' defaults but
    # one: a request can match the document and still carry a schema text that does not
    # parse, which the registry rightly refuses (42201); OpenAPI cannot describe that.
    schema = schemathesis.openapi.from_url(f"{fuzzed_registry.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        fuzz()
