"""franz-go's own integration tests for the group protocols, run against nerve and Kafka 4.4.

The kgo package's tests (of the franz-go version tests/compat/go/go.mod pins) are built from
the Go module cache and pointed at a broker with ``KGO_SEEDS``: TestGroupETL chains
consumers of the classic protocol (range, cooperative-sticky, static) and of KIP-848
(``ServerSideBalancer`` with range and sticky, static too) through three levels of topics,
checking every record arrives once in order per partition; TestShareGroup,
TestShareGroupAckOnClose, TestShareGroupOffsetsAdmin and TestShareGroupETL use share groups
(KIP-932), their acknowledgements (FlushAcks sends standalone ShareAcknowledge v2) and their
offset admin APIs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess

HERE = Path(__file__).resolve().parent
TESTS = (
    "^(TestGroupETL|TestShareGroup|TestShareGroupAckOnClose|TestShareGroupOffsetsAdmin"
    "|TestShareGroupETL)$"
)


def franz_go_version() -> str:
    for line in (HERE / "go" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["github.com/twmb/franz-go"]:
            return parts[1]
    raise AssertionError("tests/compat/go/go.mod names no franz-go version")


@pytest.fixture(scope="module")
def kgo_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.fail("go is not installed (.ci/run installs it)")
    module = f"github.com/twmb/franz-go@{franz_go_version()}"
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    downloaded = subprocess.run(
        ["go", "mod", "download", "-json", module],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE / "go",
    )
    source = Path(json.loads(downloaded.stdout)["Dir"])
    binary = tmp_path_factory.mktemp("kgo") / "kgo.test"
    subprocess.run(
        ["go", "test", "-c", "-o", str(binary), "./pkg/kgo"],
        cwd=source,
        check=True,
        capture_output=True,
        env=env,
    )
    return binary


@pytest.fixture(scope="module")
def nerve_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        tmp_path_factory.mktemp("franz-go-suite") / "data",
        configs={"group.initial.rebalance.delay.ms": 0},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["nerve", "kafka"])
def test_franz_go_group_and_share_group_tests_pass(
    request: pytest.FixtureRequest, kgo_tests: Path, tmp_path: Path, backend: str
) -> None:
    proc: BrokerProcess | KafkaProcess = request.getfixturevalue(
        "nerve_broker" if backend == "nerve" else "kafka"
    )
    env = {
        **os.environ,
        "KGO_SEEDS": proc.bootstrap,
        "KGO_TEST_RF": "1",  # one broker
        "KGO_TEST_RECORDS": "5000",  # 500,000 by default: minutes per level on nerve
        "KGO_LOG_LEVEL": "none",
    }
    run = subprocess.run(
        [str(kgo_tests), "-test.run", TESTS, "-test.v", "-test.timeout", "500s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=560,
    )
    passed = {line.split()[2] for line in run.stdout.splitlines() if line.startswith("--- PASS: ")}
    assert run.returncode == 0, run.stdout[-6000:]
    # Nothing skipped as unsupported: each test ran and passed.
    assert {
        "TestGroupETL",
        "TestShareGroup",
        "TestShareGroupAckOnClose",
        "TestShareGroupOffsetsAdmin",
        "TestShareGroupETL",
    } <= passed, run.stdout[-6000:]
    assert "--- SKIP" not in run.stdout, run.stdout[-6000:]
