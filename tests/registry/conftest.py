"""Registry test helpers: unique subjects and a thin HTTP client (the registry fixtures are in
tests/conftest.py, shared with the service tests)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests._registry import RegistryProcess

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_subject_counter = itertools.count()


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
