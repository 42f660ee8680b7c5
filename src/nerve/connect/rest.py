"""A client of Kafka Connect's REST API (any Connect 3.x/4.x cluster, on nerve or on Kafka):
what ``nerve connect`` does, for programs too. Errors carry Connect's status and message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class ConnectRestError(Exception):
    """Connect refused a request (``status`` is its HTTP status; 0: it could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConnectClient:
    def __init__(self, url: str = "http://127.0.0.1:8083", *, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = httpx.request(method, self.url + path, json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ConnectRestError(0, f"cannot reach Kafka Connect at {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message"))
            except ValueError:
                message = response.text.strip()
            raise ConnectRestError(response.status_code, message)
        return response.json() if response.content else None

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    def connectors(self) -> dict[str, Any]:
        """Every connector with its status and configuration (Connect's ``?expand=``)."""
        found: dict[str, Any] = self._call("GET", "/connectors?expand=status&expand=info")
        return found

    def plugins(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/connector-plugins")
        return found

    def create(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        """Create the connector, or replace its configuration (PUT is both in Connect)."""
        answer: dict[str, Any] = self._call("PUT", f"/connectors/{self._name(name)}/config", config)
        return answer

    def config(self, name: str) -> dict[str, str]:
        found: dict[str, str] = self._call("GET", f"/connectors/{self._name(name)}/config")
        return found

    def status(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/connectors/{self._name(name)}/status")
        return found

    def offsets(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/connectors/{self._name(name)}/offsets")
        return found

    def pause(self, name: str) -> None:
        self._call("PUT", f"/connectors/{self._name(name)}/pause")

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{self._name(name)}/resume")

    def stop(self, name: str) -> None:
        self._call("PUT", f"/connectors/{self._name(name)}/stop")

    def restart(self, name: str, *, include_tasks: bool = True, only_failed: bool = False) -> Any:
        query = f"includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
        return self._call("POST", f"/connectors/{self._name(name)}/restart?{query}")

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{self._name(name)}")
