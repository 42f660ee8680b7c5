"""The console's connections: one AdminClient shared by every page, a fresh Consumer per
read (assigned, never in a group, never committing), one Producer made on first write, and an
HTTP client for the registry."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from nerve.console.config import ConsoleConfig
from nerve.security.client_settings import without_userinfo


class ConsoleError(Exception):
    """A failure a page shows in one line (an unknown topic, a broker that does not answer).

    ``status`` is the HTTP status the page answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def reason(exc: BaseException) -> str:
    """The human part of a confluent-kafka exception."""
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return str(text() if callable(text) else error)


class Cluster:
    def __init__(self, config: ConsoleConfig) -> None:
        from confluent_kafka.admin import AdminClient

        self.config = config
        self.timeout = config.request_timeout_s
        self.admin = AdminClient(config.kafka())
        self._producer: Any = None
        self._lock = threading.Lock()
        self._registry: Any = None

    def result(self, future: Any) -> Any:
        try:
            return future.result(timeout=self.timeout)
        except Exception as exc:
            raise ConsoleError(reason(exc), 502) from None

    def metadata(self) -> Any:
        """All topics' metadata (asking for one by name would make an auto-creating broker
        create it)."""
        try:
            return self.admin.list_topics(timeout=self.timeout)
        except Exception as exc:
            raise ConsoleError(
                f"cannot reach Kafka at {self.config.bootstrap_servers}: {reason(exc)}", 502
            ) from None

    def topic(self, name: str) -> Any:
        found = self.metadata().topics.get(name)
        if found is None or found.error is not None:
            raise ConsoleError(f"unknown topic {name}", 404)
        return found

    def consumer(self, **extra: Any) -> Any:
        """A consumer for one read: assign() it; it joins no group and commits nothing."""
        from confluent_kafka import Consumer

        settings = {
            "group.id": f"nerve-console-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            # What consumers see: an aborted transaction's records (an exactly-once service
            # retrying a batch) are not part of the history a page or a trace shows.
            "isolation.level": "read_committed",
            **extra,
        }
        return Consumer(self.config.kafka(**settings))

    def producer(self) -> Any:
        from confluent_kafka import Producer

        with self._lock:
            if self._producer is None:
                self._producer = Producer(
                    self.config.kafka(**{"enable.idempotence": True, "linger.ms": 0})
                )
            return self._producer

    def watermarks(self, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """Each partition's low and high watermark (earliest offset, end offset)."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if not partitions:
            return {}
        low = self.admin.list_offsets(
            {TopicPartition(topic, p): OffsetSpec.earliest() for p in partitions},
            request_timeout=self.timeout,
        )
        high = self.admin.list_offsets(
            {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
            request_timeout=self.timeout,
        )
        lows = {tp.partition: self.result(f).offset for tp, f in low.items()}
        highs = {tp.partition: self.result(f).offset for tp, f in high.items()}
        return {p: (lows[p], highs[p]) for p in partitions}

    def ends(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offset of many partitions of many topics in one request (-1: unknown)."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if not partitions:
            return {}
        futures = self.admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions},
            request_timeout=self.timeout,
        )
        ends: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result(timeout=self.timeout).offset
            except Exception:
                ends[(tp.topic, tp.partition)] = -1
        return ends

    # -- the registry ----------------------------------------------------------------------

    @property
    def has_registry(self) -> bool:
        return bool(self.config.registry_url)

    def registry(self) -> Any:
        import httpx

        if not self.config.registry_url:
            raise ConsoleError("no schema registry configured (-r URL)", 404)
        with self._lock:
            if self._registry is None:
                url, headers = self.config.registry_url.rstrip("/"), {}
                if self.config.registry_token is not None:
                    # A logged-in user's token, not the console's own credentials in the URL.
                    url = without_userinfo(url) or url
                    headers["Authorization"] = f"Bearer {self.config.registry_token}"
                self._registry = httpx.Client(
                    base_url=url,
                    timeout=self.timeout,
                    auth=self.config.registry_auth,
                    headers=headers,
                )
            return self._registry

    def registry_get(self, path: str, **params: Any) -> Any:
        """A GET on the registry's REST API: its JSON, or ConsoleError with its message."""
        import httpx

        try:
            response = self.registry().get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise ConsoleError(
                f"cannot reach the registry at {self.config.registry_url}: {exc}", 502
            ) from None
        return _registry_answer(response)

    def registry_send(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            response = self.registry().request(
                method,
                path,
                json=body,
                headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            )
        except httpx.HTTPError as exc:
            raise ConsoleError(
                f"cannot reach the registry at {self.config.registry_url}: {exc}", 502
            ) from None
        return _registry_answer(response)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout)
        if self._registry is not None:
            self._registry.close()


def _registry_answer(response: Any) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body.get("message") if isinstance(body, dict) else response.text
        raise ConsoleError(f"registry: {message} ({response.status_code})", response.status_code)
    return body
