"""Testing services inside pytest: a real broker (and registry) in this process, on free ports,
and helpers to emit an event and await what the services emit in response.

    from nerve.demo.finance.alerts import alerts
    from nerve.demo.finance.events import BalanceChanged, LowBalance, UserProfile

    with Platform() as platform:
        platform.emit(UserProfile(user_id="u1", name="Ada", email="ada@example.com", threshold=100))
        platform.run(alerts)
        platform.emit(BalanceChanged(account_id="a1", user_id="u1", previous=150, balance=50,
                                     transaction_id="t1"))
        [low] = platform.expect(LowBalance, where=lambda e: e.user_id == "u1")
        assert low.balance == 50 and low.meta.causation_id is not None

``Platform(secure=True)`` runs the broker as ``nerve up --secure`` does: one SASL_SSL listener
with a certificate from a CA made for the platform, authorization on, an admin super user, and
the registry's HTTP Basic login (``registry_url`` carries the admin's name and password).
Services run by the platform, ``emit``, ``read`` and ``expect`` use the admin's credentials;
``add_user`` makes a SCRAM user and ``config_for`` gives a service that user's settings, so a
test can run a service with only the ACLs it grants.

``expect`` returns a list: the events that matched, at least ``count`` of them. Everything is
real (sockets, the Kafka protocol, consumer groups); only the processes are shared, so a test
starts in well under a second. Each ``Platform`` starts its services from nothing: tables of a
module-level ``Service`` are read again from the new broker, not kept from an earlier one.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Producer

from nerve.service import envelope
from nerve.service.avro import CONTENT_TYPE as AVRO_CONTENT_TYPE
from nerve.service.avro import AvroCodec
from nerve.service.config import RunConfig
from nerve.service.content import EventReader
from nerve.service.events import Event
from nerve.service.observability import NULL_OBSERVER, Observer
from nerve.service.runtime import ServiceRunner
from nerve.service.service import Service
from nerve.service.topic_reader import read_to_end

E = TypeVar("E", bound=Event)
Record = tuple[bytes | None, bytes | None, Any]  # key, value, headers
T = TypeVar("T")


class Platform:
    """A broker, a schema registry and the services under test, in background threads."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        registry: bool = True,
        port: int = 0,
        registry_port: int = 0,
        fsync: bool = False,
        secure: bool = False,
    ) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="nerve-test-")
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.with_registry = registry
        self.port, self.registry_port, self.fsync = port, registry_port, fsync
        self.secure = secure
        self.security: Any = None  # nerve.broker.security.local.LocalSecurity when secure
        # librdkafka settings every client of the platform is given (the admin's when secure)
        self.client_config: dict[str, Any] = {}
        # The broker and registry on one loop, the services on another: a service blocking its
        # loop (a slow handler, a sync client call) must not stall the broker it talks to.
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service_loop = asyncio.new_event_loop()
        self._service_thread = threading.Thread(target=self.service_loop.run_forever, daemon=True)
        self.bootstrap = ""
        self.registry_url: str | None = None
        self.runners: list[ServiceRunner] = []
        self._stops: list[asyncio.Event] = []
        self._tasks: list[Any] = []
        self._broker: Any = None
        self._registry: Any = None
        self._producer: Producer | None = None
        self._avro: AvroCodec | None = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Platform:
        from nerve.broker.config import BrokerConfig
        from nerve.broker.server import Broker

        self._thread.start()
        self._service_thread.start()
        config = BrokerConfig(data_dir=self.data_dir / "broker", port=self.port)
        if not self.fsync:
            config.apply({"log.fsync.policy": "never"})  # tests need speed, not power loss
        if self.secure:
            from nerve.broker.security import local

            self.security = local.prepare(self.data_dir)
            config.apply(self.security.broker_settings("127.0.0.1", self.port))
            self.client_config = self.security.admin_settings()
        self._broker = Broker(config)
        host, port = self._call(self._broker.start())
        self.bootstrap = f"{host}:{port}"
        if self.security is not None:
            self.security.write_admin_properties(self.bootstrap)
        if self.with_registry:
            from nerve.registry.config import RegistryConfig
            from nerve.registry.server import RegistryServer

            registry_config = RegistryConfig()
            userinfo = ""
            if self.security is not None:
                from nerve.broker.security.local import ADMIN

                registry_config.apply(self.security.http_settings())
                userinfo = f"{ADMIN}:{self.security.admin_password}@"
            self._registry = RegistryServer(
                self.bootstrap,
                host,
                self.registry_port,
                client_config=self.client_config,
                config=registry_config,
            )
            r_host, r_port = self._call(self._registry.start())
            # Secure: the admin's credentials in the URL, which confluent-kafka's registry
            # client and httpx send as HTTP Basic.
            self.registry_url = f"http://{userinfo}{r_host}:{r_port}"
        self._producer = Producer(self.kafka(**{"linger.ms": 0}))
        return self

    def kafka(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for a client of the platform (the admin's, when secure)."""
        return {"bootstrap.servers": self.bootstrap, "log_level": 0, **self.client_config, **extra}

    def add_user(
        self, name: str, password: str | None = None, mechanism: str = "SCRAM-SHA-512"
    ) -> dict[str, Any]:
        """A SCRAM user on a secure platform (made by the admin); returns its librdkafka
        settings, bootstrap servers included."""
        import secrets

        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        assert self.security is not None, "users need Platform(secure=True)"
        password = password or secrets.token_urlsafe(16)
        info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 8192)
        admin = AdminClient(self.kafka())
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(30)
        return {
            "bootstrap.servers": self.bootstrap,
            **self.security.client_settings(name, password, mechanism),
        }

    def config_for(self, user_settings: dict[str, Any]) -> RunConfig:
        """A run configuration that connects as the user ``add_user`` made."""
        settings = {k: v for k, v in user_settings.items() if k != "bootstrap.servers"}
        return RunConfig(
            bootstrap_servers=self.bootstrap,
            registry_url=self.registry_url,
            client_config=settings,
            state_dir=self.state_dir,
        )

    def __exit__(self, *exc: object) -> None:
        self.stop_services()
        if self._registry is not None:
            self._call(self._registry.stop())
        if self._broker is not None:
            self._call(self._broker.stop())
        for loop, thread in ((self.service_loop, self._service_thread), (self.loop, self._thread)):
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def avro(self) -> AvroCodec:
        if self._avro is None:
            assert self.registry_url is not None, "Avro events need the platform's registry"
            self._avro = AvroCodec(self.registry_url)
        return self._avro

    @property
    def config(self) -> RunConfig:
        return RunConfig(
            bootstrap_servers=self.bootstrap,
            registry_url=self.registry_url,
            client_config=dict(self.client_config),
            state_dir=self.state_dir,
        )

    @property
    def state_dir(self) -> str:
        """Where services' local state (streams stores, aggregates) lives: inside the
        platform's data directory, so it goes with the broker whose changelogs it matches and
        a new Platform starts from nothing (never ``.nerve/state`` of the working directory,
        nor NERVE_STATE_DIR, which two test processes would share)."""
        return str(self.data_dir / "state")

    # -- services ----------------------------------------------------------------------------

    def run(
        self,
        *services: Service,
        observer: Observer = NULL_OBSERVER,
        config: RunConfig | None = None,
    ) -> list[ServiceRunner]:
        """Start services (each joins its consumer group) and return their runners; with
        ``config`` (``config_for``), as another user than the platform's."""
        started = []
        for service in services:
            runner = ServiceRunner(service, config or self.config, observer)
            runner.start()
            stop = asyncio.Event()
            self._stops.append(stop)
            self._tasks.append(
                asyncio.run_coroutine_threadsafe(runner.run(stop), self.service_loop)
            )
            self.runners.append(runner)
            started.append(runner)
        return started

    def stop_services(self) -> None:
        for stop in self._stops:
            self.service_loop.call_soon_threadsafe(stop.set)
        for task in self._tasks:
            task.result(30)
        for runner in self.runners:
            runner.close()
        self._stops, self._tasks, self.runners = [], [], []

    # -- events in and out -------------------------------------------------------------------

    def emit(self, event: Event, *, source: str = "/nerve/testing") -> Event:
        """Send an event as a service would (CloudEvents envelope, keyed), and wait for it."""
        assert self._producer is not None
        meta = event.meta
        meta.source, meta.type = source, event.event_type
        if event.value_format == "avro":
            codec = self.avro()
            schema_id = codec.register(f"{event.topic}-value", type(event))
            data, content_type = codec.encode(event, schema_id), AVRO_CONTENT_TYPE
        else:
            data, content_type = event.__pydantic_serializer__.to_json(event), envelope.JSON
        value, headers = envelope.write(meta, data, content_type, event.content_mode)
        self._producer.produce(event.topic, value=value, key=event.record_key(), headers=headers)
        self._producer.flush(30)
        return event

    def read(self, topic: str, timeout: float = 5.0) -> list[Record]:
        """Every committed record of a topic so far: (key, value, headers); [] before the
        topic exists."""
        records = read_to_end(self.kafka(), topic, timeout_s=timeout)
        return [(m.key(), m.value(), m.headers()) for m in records or ()]

    def expect(
        self,
        event_type: type[E],
        where: Callable[[E], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[E]:
        """Wait until ``count`` events of the type (matching ``where``) are on its topic, and
        return every matching one there, as read (``event.meta`` has its envelope, key and
        position); AssertionError after ``timeout`` seconds, saying how many it found."""
        deadline = time.monotonic() + timeout
        matched: list[E] = []
        while time.monotonic() < deadline:
            matched = []
            reader = EventReader(self.registry_url, self.avro() if self.registry_url else None)
            for key, value, headers in self.read(event_type.topic):
                if value is None:
                    continue
                # Read as a service reads it: either content mode, by the data's media type.
                meta, data, content_type = envelope.read(headers, value)
                event = reader.read(event_type, data, content_type)
                event.attach(meta)
                event.meta.key = key
                if where is None or where(event):
                    matched.append(event)
            if len(matched) >= count:
                return matched
            time.sleep(0.1)
        raise AssertionError(
            f"expected {count} {event_type.__name__} event(s) on {event_type.topic} within "
            f"{timeout}s, found {len(matched)}"
        )
