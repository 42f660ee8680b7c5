"""Connectors in nerve's catalog: each connector of a Connect cluster is announced like a
service (``connect:<name>``), a source emitting its topics, a sink consuming them, with the
database it reads or writes named, so the lineage graph shows database → topic → service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nerve.connect.rest import ConnectClient

PREFIX = "connect:"
CDC_PREFIX = "cdc:"


def _database(config: dict[str, str]) -> str | None:
    """Where a connector's data lives outside Kafka, as a URL-like name (no credentials)."""
    if "database.hostname" in config:
        cls = config.get("connector.class", "")
        kind = "postgresql" if "postgres" in cls.lower() else cls.rsplit(".", 1)[-1]
        port = config.get("database.port", "")
        name = config.get("database.dbname", "")
        return f"{kind}://{config['database.hostname']}{':' + port if port else ''}/{name}"
    url = config.get("connection.url")
    if url:
        return url.split("?", 1)[0]
    if "file" in config:
        return f"file://{config['file']}"
    return None


def _record(
    name: str, description: str, connector: dict[str, Any], topics: list[str], sink: bool
) -> dict[str, Any]:
    """A catalog record for something outside nerve's services that moves data between a
    database (or file) and topics: a connector, or ``nerve cdc``."""
    entries = [{"topic": t, "event": None, "type": None, "schema": None} for t in topics]
    emits = [] if sink else [{**e, "type": e["topic"], "key": None, "schema_id": None}
                             for e in entries]  # fmt: skip
    return {
        "name": name,
        "description": description,
        "owner": None,
        "kind": "connector",
        "connector": connector,
        "consumes": [{**e, "handlers": [], "filtered": False} for e in entries] if sink else [],
        # A source's records carry no CloudEvents type; the topic stands for it, which is also
        # the type of a ChangeEvent bound to that topic (so the lineage links the two).
        "emits": emits,
        "tables": [],
        "streams": None,
        "group": None,
        "registry": None,
        "metrics": None,
        "announced_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def postgres_url(dsn: str) -> str:
    """``postgresql://host:port/db`` of a libpq connection string or URL, without credentials."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    return f"postgresql://{host}{':' + str(port) if port else ''}/{parts.get('dbname') or ''}"


def announce_capture(kafka: dict[str, Any], prefix: str, dsn: str, topics: list[str]) -> None:
    """``nerve cdc postgres`` announces itself as ``cdc:<prefix>``: a source of its tables'
    topics reading the database, so the lineage shows database -> topic -> service without
    anyone running ``nerve connect catalog``."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from nerve.service import catalog
    from nerve.service.runtime import ensure_topics

    ensure_topics(AdminClient(kafka), {catalog.CATALOG_TOPIC: 1}, compact=True)
    connector = {"class": "nerve cdc postgres", "type": "source", "database": postgres_url(dsn)}
    record = _record(CDC_PREFIX + prefix, "nerve cdc postgres: the database's row changes",
                     connector, sorted(topics), sink=False)  # fmt: skip
    producer = Producer({**kafka, "linger.ms": 0})
    producer.produce(catalog.CATALOG_TOPIC, key=record["name"], value=json.dumps(record))
    if producer.flush(10):
        raise RuntimeError(f"the catalog topic {catalog.CATALOG_TOPIC} did not acknowledge")


def describe(
    client: ConnectClient, name: str, info: dict[str, Any], status: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The catalog record of one connector (``info`` and ``status``: its entries of
    ``?expand=info`` and ``?expand=status``): its tasks with their state and worker as they
    were when announced."""
    config: dict[str, str] = info.get("config", {})
    kind = info.get("type", "unknown")
    try:
        topics = sorted(
            client._call("GET", f"/connectors/{client._name(name)}/topics")[name]["topics"]
        )
    except Exception:  # a cluster with topic tracking off (topic.tracking.enable=false)
        topics = []
    if kind == "sink":
        topics = sorted(set(topics) | {t.strip() for t in config.get("topics", "").split(",") if t})
    connector = {
        "class": config.get("connector.class"),
        "type": kind,
        "database": _database(config),
        "state": (status or {}).get("connector", {}).get("state"),
        "tasks": [
            {"id": t.get("id"), "state": t.get("state"), "worker": t.get("worker_id")}
            for t in (status or {}).get("tasks", [])
        ],
    }
    description = f"Kafka Connect {kind} connector {config.get('connector.class', '?')}"
    return _record(PREFIX + name, description, connector, topics, sink=kind == "sink")


def announce(client: ConnectClient, kafka: dict[str, Any]) -> list[str]:
    """Announce every connector of the cluster, and remove from the catalog the connectors it
    no longer has; the names announced."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from nerve.service import catalog
    from nerve.service.runtime import ensure_topics

    ensure_topics(AdminClient(kafka), {catalog.CATALOG_TOPIC: 1}, compact=True)
    current = catalog.read(kafka)
    found = client.connectors()
    producer = Producer({**kafka, "linger.ms": 0})
    announced = []
    for name in sorted(found):
        record = describe(client, name, found[name].get("info", {}), found[name].get("status"))
        producer.produce(catalog.CATALOG_TOPIC, key=record["name"], value=json.dumps(record))
        announced.append(record["name"])
    for gone in current:
        if gone.startswith(PREFIX) and gone not in announced:
            producer.produce(catalog.CATALOG_TOPIC, key=gone, value=None)
    if producer.flush(10):
        raise RuntimeError(f"the catalog topic {catalog.CATALOG_TOPIC} did not acknowledge")
    return announced
