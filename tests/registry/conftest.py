"""Registry fixtures: ``nerve registry`` as a real subprocess against a real broker."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._broker import BrokerProcess

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_subject_counter = itertools.count()


class RegistryProcess(BrokerProcess):
    """``python -m nerve registry``: the same life cycle as a broker subprocess, with
    ``data_dir`` holding only its stderr log."""

    def __init__(self, root: Path, bootstrap: str, topic: str = "_schemas") -> None:
        super().__init__(root)
        self.kafka_bootstrap = bootstrap
        self.topic = topic

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "nerve",
            "registry",
            "--bootstrap-servers",
            self.kafka_bootstrap,
            "--listen",
            f"{self.host}:{port}",
            "--topic",
            self.topic,
        ]

    @property
    def url(self) -> str:
        return f"http://{self.bootstrap}"


RegistryFactory = Callable[..., RegistryProcess]


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """``registry_factory(bootstrap, topic)`` -> a started registry, stopped at teardown."""
    started: list[RegistryProcess] = []

    def make(bootstrap: str, topic: str = "_schemas") -> RegistryProcess:
        proc = RegistryProcess(tmp_path / f"registry{len(started)}", bootstrap, topic)
        started.append(proc)
        return proc.start()

    try:
        yield make
    finally:
        for proc in started:
            proc.close()


@pytest.fixture(scope="session")
def shared_registry(
    shared_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """One registry on the shared broker; tests use unique subjects (``subject_name``)."""
    proc = RegistryProcess(tmp_path_factory.mktemp("registry"), shared_broker.bootstrap)
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def subject_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    def make(suffix: str = "value") -> str:
        return f"{request.node.name[:40]}-{next(_subject_counter)}-{uuid.uuid4().hex[:6]}-{suffix}"

    return make


class Api:
    """A thin HTTP client that returns (status, JSON body) and never raises on 4xx."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(
            base_url=url,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
            timeout=30,
        )

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        response = self.client.request(method, path, json=body, params=query)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any, **params: Any) -> tuple[int, Any]:
        return self.call("POST", path, body, **params)

    def put(self, path: str, body: Any, **params: Any) -> tuple[int, Any]:
        return self.call("PUT", path, body, **params)

    def delete(self, path: str, **params: Any) -> tuple[int, Any]:
        return self.call("DELETE", path, **params)


@pytest.fixture
def api(shared_registry: RegistryProcess) -> Iterator[Api]:
    client = Api(shared_registry.url)
    yield client
    client.client.close()
