"""Per-subject rights: Confluent's Schema Registry ACL model, kept in a compacted Kafka topic.

Confluent Schema Registry's ACL authorizer (``confluent.schema.registry.authorizer.class=
...SchemaRegistryAclAuthorizer``) maps every request to one operation (SUBJECT_READ,
SUBJECT_WRITE, ... on a subject; GLOBAL_READ, GLOBAL_COMPATIBILITY_* on the registry) and
allows it when an ACL grants that operation to the caller; the ACLs live in the topic
``<kafkastore.topic>_acl`` and are written by a command-line tool that talks to Kafka, not to
the registry. nerve takes the same model and the same operation names: ``nerve schemas acl``
writes the topic, and every registry instance follows it, so a change takes effect at once
without a restart, on nerve's broker or any Kafka.

An ACL names a principal (a user name, or ``*`` for everyone), an operation (or ``*``), a
subject pattern for subject operations (a name, ``*`` for all, or ``prefix*``) and ALLOW or
DENY; DENY beats ALLOW, as in Kafka. Reading a schema by id (SCHEMA_READ) is allowed to whoever
may SUBJECT_READ one of the subjects that use it, as in Confluent.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote

from nerve.registry import media

# confluent-kafka is imported where Kafka is used: the CLI builds its parser (with this module's
# operation names) without it, so that every command starts fast.

log = logging.getLogger("nerve.registry")

SUBJECT_OPERATIONS = (
    "SUBJECT_READ",
    "SUBJECT_WRITE",
    "SUBJECT_DELETE",
    "SUBJECT_COMPATIBILITY_READ",
    "SUBJECT_COMPATIBILITY_WRITE",
)
GLOBAL_OPERATIONS = ("GLOBAL_READ", "GLOBAL_COMPATIBILITY_READ", "GLOBAL_COMPATIBILITY_WRITE")
OPERATIONS = SUBJECT_OPERATIONS + GLOBAL_OPERATIONS
ANONYMOUS = "ANONYMOUS"  # the principal of a request when authentication is off
AUTHORIZER_CLASS = (
    "io.confluent.kafka.schemaregistry.security.authorizer.schemaregistryacl."
    "SchemaRegistryAclAuthorizer"
)


class AclError(ValueError):
    """An ACL that cannot be stored: an unknown operation, a subject where none belongs."""


@dataclass(frozen=True)
class Acl:
    principal: str  # a user name, or * for every principal
    operation: str  # one of OPERATIONS, or * for all of them
    subject: str = ""  # subject operations: a name, * or prefix*; empty for global ones
    permission: str = "ALLOW"  # or DENY

    def __post_init__(self) -> None:
        if self.operation != "*" and self.operation not in OPERATIONS:
            raise AclError(
                f"unknown operation {self.operation!r}; one of {', '.join(OPERATIONS)} or *"
            )
        if self.permission not in ("ALLOW", "DENY"):
            raise AclError(f"permission must be ALLOW or DENY, not {self.permission!r}")
        if not self.principal:
            raise AclError("an ACL needs a principal (a user name, or *)")
        if self.operation in GLOBAL_OPERATIONS and self.subject:
            raise AclError(f"{self.operation} is a registry-wide operation: give no subject")
        if self.operation in SUBJECT_OPERATIONS and not self.subject:
            raise AclError(f"{self.operation} needs a subject (a name, * or prefix*)")

    def matches(self, principal: str, operation: str, subject: str | None) -> bool:
        if self.principal not in ("*", principal):
            return False
        if self.operation not in ("*", operation):
            return False
        if subject is None:  # a global operation
            return self.operation == "*" or not self.subject
        pattern = self.subject or "*"
        if pattern.endswith("*"):
            return subject.startswith(pattern[:-1])
        return subject == pattern

    def key(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


class AclStore:
    """The ACLs a registry instance knows, and the decision for one request."""

    def __init__(self, acls: Iterable[Acl] = ()) -> None:
        self._lock = threading.Lock()
        self._acls: set[Acl] = set(acls)

    def apply(self, key: bytes, value: bytes | None) -> None:
        try:
            acl = Acl(**json.loads(key))
        except (ValueError, TypeError) as exc:
            log.warning("ignored an unreadable record of the ACL topic (%s): %r", exc, key[:200])
            return
        with self._lock:
            if value is None:
                self._acls.discard(acl)
            else:
                self._acls.add(acl)

    def all(self) -> list[Acl]:
        with self._lock:
            return sorted(self._acls, key=lambda a: (a.principal, a.subject, a.operation))

    def allows(self, principal: str, operation: str, subject: str | None) -> bool:
        with self._lock:
            matching = [a for a in self._acls if a.matches(principal, operation, subject)]
        if any(a.permission == "DENY" for a in matching):
            return False
        return any(a.permission == "ALLOW" for a in matching)


def acl_topic(schemas_topic: str, configured: str = "") -> str:
    """Confluent's ``confluent.schema.registry.acl.topic``: ``<kafkastore.topic>_acl`` unless
    set."""
    return configured or f"{schemas_topic}_acl"


class AclTopic:
    """Follows the ACL topic into an :class:`AclStore` from a background thread."""

    def __init__(self, config: dict[str, Any], topic: str, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.store = AclStore()
        self._config = config
        self._timeout_s = timeout_s
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._consumer: Any = None  # a confluent_kafka Consumer once started
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        ensure_topic(self._config, self.topic, self._timeout_s)
        self._consumer = Consumer(
            {
                **self._config,
                "group.id": f"nerve-registry-acl-reader-{self.topic}",  # never joined
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._thread = threading.Thread(target=self._read, name="registry-acls", daemon=True)
        self._thread.start()
        if not self._caught_up.wait(self._timeout_s):
            raise TimeoutError(f"could not read the ACL topic {self.topic} to its end")

    def _read(self) -> None:
        from confluent_kafka import KafkaError

        assert self._consumer is not None
        while not self._stopping.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._caught_up.set()
                else:
                    log.warning("reading the ACL topic %s: %s", self.topic, error.str())
                continue
            key = message.key()
            if key is not None:
                self.store.apply(key, message.value())

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()


def ensure_topic(config: dict[str, Any], topic: str, timeout_s: float = 30.0) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(config)
    wanted = NewTopic(topic, 1, replication_factor=-1, config={"cleanup.policy": "compact"})
    future = admin.create_topics([wanted], request_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:  # TOPIC_ALREADY_EXISTS is the common case
        error = exc.args[0] if exc.args else None
        if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def write(config: dict[str, Any], topic: str, acls: Iterable[Acl], *, remove: bool) -> None:
    """Add (or remove) ACLs: records of the compacted topic, tombstones to remove."""
    from confluent_kafka import Producer

    ensure_topic(config, topic)
    producer = Producer({**config, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: Any, _: Any) -> None:
        if err is not None:
            failures.append(err.str())

    for acl in acls:
        value = None if remove else json.dumps({"permission": acl.permission}).encode()
        producer.produce(topic, key=acl.key(), value=value, on_delivery=delivered)
    remaining = producer.flush(30)
    if failures or remaining:
        raise RuntimeError(f"the ACL topic {topic} refused the write: {failures or 'timed out'}")


# -- mapping requests to operations ---------------------------------------------------------

_SUBJECT = r"(?P<subject>[^/]+)"
_VERSION = r"(/[^/]+(/schema|/referencedby)?)?"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern + r"/?$"), operation)
    for method, pattern, operation in [
        ("GET", r"^/subjects", "GLOBAL_READ"),
        ("GET", r"^/schemas", "GLOBAL_READ"),
        ("GET", rf"^/subjects/{_SUBJECT}/versions{_VERSION}", "SUBJECT_READ"),
        ("POST", rf"^/subjects/{_SUBJECT}", "SUBJECT_READ"),
        ("POST", rf"^/subjects/{_SUBJECT}/versions", "SUBJECT_WRITE"),
        ("POST", rf"^/compatibility/subjects/{_SUBJECT}/versions(/[^/]+)?", "SUBJECT_WRITE"),
        ("DELETE", rf"^/subjects/{_SUBJECT}(/versions/[^/]+)?", "SUBJECT_DELETE"),
        ("GET", rf"^/(config|mode)/{_SUBJECT}", "SUBJECT_COMPATIBILITY_READ"),
        ("PUT", rf"^/(config|mode)/{_SUBJECT}", "SUBJECT_COMPATIBILITY_WRITE"),
        ("DELETE", rf"^/(config|mode)/{_SUBJECT}", "SUBJECT_COMPATIBILITY_WRITE"),
        ("GET", r"^/(config|mode)", "GLOBAL_COMPATIBILITY_READ"),
        ("PUT", r"^/(config|mode)", "GLOBAL_COMPATIBILITY_WRITE"),
        ("DELETE", r"^/(config|mode)", "GLOBAL_COMPATIBILITY_WRITE"),
    ]
]
_SCHEMA_BY_ID = re.compile(r"^/schemas/ids/(?P<id>\d+)(/schema|/subjects|/versions)?/?$")


def operation_of(method: str, path: str) -> tuple[str, str | None] | None:
    """The operation and subject a request needs (``path`` as routed: each segment decoded
    but ``%2F`` kept), or None for what any authenticated user may call (``/``, metadata,
    schema types, contexts, health)."""
    for route_method, pattern, operation in _ROUTES:
        if route_method != method:
            continue
        match = pattern.match(path)
        if match is not None:
            subject = match.groupdict().get("subject")
            return operation, unquote(subject) if subject is not None else None
    return None


class AclMiddleware:
    """ASGI middleware inside authentication: answers 403 for a request the caller's ACLs do
    not allow, with Confluent's error code 40301."""

    def __init__(self, app: Any, store: AclStore, subjects_of_id: Any) -> None:
        self.app = app
        self.store = store
        self.subjects_of_id = subjects_of_id  # schema id -> the subjects using it

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal = scope.get("nerve.principal") or ANONYMOUS
        method, path = scope["method"], scope["path"]
        refusal = None
        by_id = _SCHEMA_BY_ID.match(path) if method == "GET" else None
        if by_id is not None:
            subjects = self.subjects_of_id(int(by_id.group("id")))
            if subjects is not None and not any(
                self.store.allows(principal, "SUBJECT_READ", s) for s in subjects
            ):
                refusal = f"User {principal} is denied operation SCHEMA_READ on schema id " + (
                    by_id.group("id")
                )
        else:
            needed = operation_of(method, path)
            if needed is not None and not self.store.allows(principal, *needed):
                operation, subject = needed
                on = f"subject {subject}" if subject is not None else "the registry"
                refusal = f"User {principal} is denied operation {operation} on {on}"
        if refusal is None:
            await self.app(scope, receive, send)
            return
        log.info("registry: %s", refusal)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = json.dumps({"error_code": 40301, "message": refusal}).encode()
        answer_type = media.negotiate(headers.get("accept")) or media.V1_JSON
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", answer_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
