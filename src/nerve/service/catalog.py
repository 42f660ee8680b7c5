"""The catalog: at start each service announces what it is, consumes and emits to the compacted
``_nerve_catalog`` topic, so that tools (``nerve catalog``, the console) can draw the system.

One record per service, keyed by its name: the latest announcement wins and a tombstone
removes the service. ``describe`` builds a record, ``announce`` writes it, ``read`` collects
the current records and ``asyncapi`` turns them into an AsyncAPI 3.0 document.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nerve.security import client_settings

if TYPE_CHECKING:  # readers (the console, nerve catalog) do not pay for pydantic
    from nerve.service.config import RunConfig
    from nerve.service.events import Event
    from nerve.service.service import Service

log = logging.getLogger("nerve.service")

CATALOG_TOPIC = "_nerve_catalog"
ANNOUNCE_TIMEOUT_S = 10.0

# The CloudEvents attributes nerve writes as Kafka headers in binary content mode (the data's
# media type, content-type, is added per message: JSON or Avro).
CLOUDEVENTS_HEADERS: dict[str, dict[str, Any]] = {
    "ce_id": {"type": "string", "description": "CloudEvents id: unique per event"},
    "ce_source": {"type": "string", "description": "CloudEvents source: /nerve/services/NAME"},
    "ce_type": {"type": "string", "description": "CloudEvents type of the event"},
    "ce_specversion": {"type": "string", "const": "1.0"},
    "ce_time": {"type": "string", "format": "date-time"},
    "ce_subject": {"type": "string"},
    "ce_dataschema": {"type": "string", "description": "the registry URL of the schema"},
    "ce_correlationid": {"type": "string", "description": "id of the event a chain began with"},
    "ce_causationid": {"type": "string", "description": "id of the event this one answers"},
    "ce_traceparent": {
        "type": "string",
        "description": "W3C trace context, the CloudEvents Distributed Tracing extension",
    },
    "ce_tracestate": {"type": "string"},
    "traceparent": {"type": "string", "description": "W3C trace context (the same)"},
    "tracestate": {"type": "string"},
}
_REQUIRED_HEADERS = ["ce_id", "ce_source", "ce_type", "ce_specversion", "content-type"]
# Structured mode: the whole event in the value; beside it only its media type and the trace.
STRUCTURED_HEADERS: dict[str, dict[str, Any]] = {
    "content-type": {"type": "string", "const": "application/cloudevents+json; charset=UTF-8"},
    "traceparent": {"type": "string", "description": "W3C trace context"},
    "tracestate": {"type": "string"},
}
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"
# The CloudEvents JSON format's attributes, as nerve writes them in structured mode.
_STRUCTURED_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "specversion": {"type": "string", "const": "1.0"},
    "id": {"type": "string"},
    "source": {"type": "string", "description": "/nerve/services/NAME"},
    "type": {"type": "string"},
    "time": {"type": "string", "format": "date-time"},
    "subject": {"type": "string"},
    "dataschema": {"type": "string", "description": "the registry URL of the schema"},
    "correlationid": {"type": "string"},
    "causationid": {"type": "string"},
    "traceparent": {"type": "string"},
    "tracestate": {"type": "string"},
}


def describe(
    service: Service, config: RunConfig, schema_ids: dict[type[Event], int]
) -> dict[str, Any]:
    """The catalog record of a service (JSON-ready)."""
    from nerve import __version__

    consumes: dict[tuple[str, type[Event] | None], dict[str, Any]] = {}
    for handler in service.handlers:
        entry = consumes.get((handler.topic, handler.event_type))
        if entry is None:
            entry = consumes[(handler.topic, handler.event_type)] = {
                "topic": handler.topic,
                **_event_fields(handler.event_type),
                "handlers": [],
                "filtered": False,
            }
        entry["handlers"].append(handler.name)
        entry["filtered"] = entry["filtered"] or handler.where is not None
    streams: dict[str, Any] | None = None
    builder = service.streams_builder
    if builder is not None and builder.sources:
        from nerve.streams.engine import Topology

        streams = Topology(builder).describe()
        for source in builder.sources:
            if source.internal:
                continue
            entry = consumes.get((source.topic, source.event_type))
            if entry is None:
                entry = consumes[(source.topic, source.event_type)] = {
                    "topic": source.topic,
                    **_event_fields(source.event_type),
                    "handlers": [],
                    "filtered": False,
                }
            entry["handlers"].append("streams")
    emits = [
        {
            "topic": event_type.topic,
            **_event_fields(event_type),
            "key": event_type.key_field,
            "schema_id": schema_ids.get(event_type),
        }
        for event_type in service.emits
    ]
    return {
        "name": service.name,
        "description": service.description,
        "owner": service.owner,
        "consumes": list(consumes.values()),
        "emits": emits,
        "tables": [
            {"name": t.name, "topic": t.topic, **_model_fields(t.model)} for t in service.tables
        ],
        "streams": streams,
        "group": service.name,
        "registry": client_settings.without_userinfo(config.registry_url),
        "metrics": getattr(config, "metrics_url", None),
        "announced_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "nerve_version": __version__,
    }


def _event_fields(event_type: type[Event] | None) -> dict[str, Any]:
    if event_type is None:  # a raw topic: no class, no contract
        return {"event": None, "type": None, "schema": None}
    fields = {
        "event": event_type.__name__,
        "type": event_type.event_type,
        "schema": event_type.model_json_schema(),
        "format": event_type.value_format,
        "content_mode": event_type.content_mode,
    }
    if event_type.value_format == "avro":
        from nerve.service.avro import avro_schema

        fields["avro_schema"] = avro_schema(event_type)
    return fields


def _model_fields(model: Any) -> dict[str, Any]:
    """A table's model: an event type, a plain pydantic model (no CloudEvents type), or none
    (rows are the records' JSON)."""
    from nerve.service.events import Event

    if isinstance(model, type) and issubclass(model, Event) and hasattr(model, "topic"):
        return _event_fields(model)
    if model is not None and hasattr(model, "model_json_schema"):
        return {"event": model.__name__, "type": None, "schema": model.model_json_schema()}
    return _event_fields(None)


def _consumed(service: dict[str, Any]) -> list[dict[str, Any]]:
    """What a service reads: its handlers' topics, then its tables' (a table reads its whole
    topic, though outside the service's consumer group)."""
    tables = [{**t, "table": True} for t in service.get("tables", []) if "topic" in t]
    return [*service.get("consumes", []), *tables]


def announce(service: Service, config: RunConfig, schema_ids: dict[type[Event], int]) -> None:
    """Write the service's description to the catalog topic.

    Best effort: the catalog documents the system, so a failure is logged and the service runs.
    """
    try:
        _announce(service, config, schema_ids)
    except Exception as exc:
        log.warning("%s: could not announce to %s: %s", service.name, CATALOG_TOPIC, exc)


def _announce(service: Service, config: RunConfig, schema_ids: dict[type[Event], int]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from nerve.service.runtime import ensure_topics  # runtime imports this module

    ensure_topics(AdminClient(config.kafka()), {CATALOG_TOPIC: 1}, compact=True)
    record = describe(service, config, schema_ids)
    failures: list[str] = []

    def delivered(error: Any, _: Any) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(config.kafka(**{"linger.ms": 0}))
    producer.produce(
        CATALOG_TOPIC,
        key=service.name.encode(),
        value=json.dumps(record).encode(),
        on_delivery=delivered,
    )
    if producer.flush(ANNOUNCE_TIMEOUT_S) or failures:
        raise RuntimeError(
            failures[0] if failures else f"not acknowledged in {ANNOUNCE_TIMEOUT_S}s"
        )


# -- reading -----------------------------------------------------------------------------------


class CatalogError(RuntimeError):
    """The catalog topic could not be read to its end."""


def read(client_config: dict[str, Any], timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """The current description of every announced service, by name, read to the end of the
    topic. Empty when no service ever announced itself (the topic does not exist)."""
    from confluent_kafka import KafkaException

    from nerve.service.topic_reader import read_to_end

    try:
        records = read_to_end(client_config, CATALOG_TOPIC, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise CatalogError(str(exc)) from None
    except KafkaException as exc:
        raise CatalogError(exc.args[0].str()) from None
    services: dict[str, dict[str, Any]] = {}
    for message in records or ():
        name = (message.key() or b"").decode("utf-8", "replace")
        value = message.value()
        if value is None:
            services.pop(name, None)
            continue
        try:
            services[name] = json.loads(value)
        except ValueError:
            log.warning("%s: record of %r is not JSON; skipped", CATALOG_TOPIC, name)
    return dict(sorted(services.items()))


def events(services: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event of the system: its topic and type, who emits it and who consumes it.

    A raw-topic handler (no event class) consumes whatever is on its topic; so does a table
    whose model is not an event type. Tables count as consumers of their topic.
    """
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}

    def row(topic: str, event_type: str | None) -> dict[str, Any]:
        return rows.setdefault(
            (topic, event_type),
            {"topic": topic, "type": event_type, "emitted_by": [], "consumed_by": []},
        )

    def add(names: list[str], name: str) -> None:
        if name not in names:
            names.append(name)

    for name, service in services.items():
        for emit in service.get("emits", []):
            add(row(emit["topic"], emit.get("type"))["emitted_by"], name)
        for consume in _consumed(service):
            if consume.get("type") is not None:
                add(row(consume["topic"], consume["type"])["consumed_by"], name)
    for name, service in services.items():
        for consume in _consumed(service):
            if consume.get("type") is None:
                typed = [r for (topic, _), r in rows.items() if topic == consume["topic"]]
                for found in typed or [row(consume["topic"], None)]:
                    add(found["consumed_by"], name)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1] or ""))]


# -- AsyncAPI ----------------------------------------------------------------------------------


def asyncapi(services: dict[str, dict[str, Any]], bootstrap_servers: str) -> dict[str, Any]:
    """An AsyncAPI 3.0.0 document of the whole system: a channel per topic with the messages
    on it as they are on the wire (content type; a JSON Schema payload, or Avro's own schema
    for Avro events with Confluent's framing in the Kafka binding, or the CloudEvents JSON
    envelope in structured mode; the headers of that content mode), a send or receive
    operation per service and topic. Every ``$ref`` points inside the document."""
    from nerve import __version__

    document = _Document()
    for name, service in services.items():
        for emit in service.get("emits", []):
            document.operation(name, service, "send", emit["topic"], document.message(emit))
        for consume in _consumed(service):
            typed = consume.get("type") is not None
            received = document.message(consume) if typed else None
            document.operation(
                name,
                service,
                "receive",
                consume["topic"],
                received,
                table=bool(consume.get("table")),
            )
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "nerve system",
            "version": __version__,
            "description": "Services and events announced to the "
            f"{CATALOG_TOPIC} topic: {', '.join(services) or 'none yet'}.",
        },
        "defaultContentType": "application/json",
        "servers": {
            ("kafka" if i == 0 else f"kafka-{i}"): {"host": host, "protocol": "kafka"}
            for i, host in enumerate(servers)
        },
        "channels": document.channels,
        "operations": document.operations,
        "components": {
            "schemas": {**document.headers, **document.schemas},
            "messages": document.messages,
        },
    }


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _component_id(text: str) -> str:
    """A key AsyncAPI accepts for components, channels and operations (``[A-Za-z0-9._-]+``)."""
    return _UNSAFE.sub("_", text) or "_"


class _Document:
    """The parts of an AsyncAPI document as they are collected, service after service."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.headers: dict[str, dict[str, Any]] = {}
        self._message_ids: dict[tuple[str, str], str] = {}

    def channel(self, topic: str) -> str:
        channel_id = _component_id(topic)
        self.channels.setdefault(channel_id, {"address": topic, "messages": {}})
        return channel_id

    def message(self, entry: dict[str, Any]) -> str:
        """The id of the message for an emitted or consumed event (added on first sight); the
        emitter's description wins over a consumer's, since the emitter owns the contract."""
        topic, event_type = entry["topic"], entry["type"]
        channel_id = self.channel(topic)
        message_id = self._message_ids.get((topic, event_type))
        if message_id is None:
            message_id = _component_id(event_type)
            while message_id in self.messages:
                message_id += "_"
            self._message_ids[(topic, event_type)] = message_id
            self.channels[channel_id]["messages"][message_id] = {
                "$ref": f"#/components/messages/{message_id}"
            }
        elif "key" not in entry or "x-nerve-key" in self.messages[message_id]:
            return message_id  # known, and this entry is not the emitter's: keep the first
        name = entry.get("event") or event_type
        message: dict[str, Any] = {
            "name": name,
            "title": name,
            "summary": f"CloudEvents type {event_type} on {topic}",
            **self._wire(entry),
        }
        kafka: dict[str, Any] = {}
        if "key" in entry:
            message["x-nerve-key"] = entry["key"]
            if entry["key"] is not None:
                kafka["key"] = {"type": "string", "description": f"the event's {entry['key']}"}
            if entry.get("schema_id") is not None:
                message["x-nerve-schema-id"] = entry["schema_id"]
        if entry.get("format") == "avro" and entry.get("content_mode") != "structured":
            # Confluent's framing: magic byte 0 and the schema's 4-byte id before the Avro.
            kafka.update(
                schemaIdLocation="payload",
                schemaIdPayloadEncoding="confluent",
                schemaLookupStrategy="TopicIdStrategy",
            )
        if kafka:
            message["bindings"] = {"kafka": {**kafka, "bindingVersion": "0.5.0"}}
        self.messages[message_id] = message
        return message_id

    def _wire(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A message as it is on the wire: its content type, headers and payload, by the
        event's content mode and format (older catalog records: binary JSON)."""
        schema = entry.get("schema") or {}
        avro = entry.get("format") == "avro"
        data_type = "application/avro" if avro else "application/json"
        if entry.get("content_mode") == "structured":
            data: dict[str, Any] = (
                {
                    "type": "string",
                    "contentEncoding": "base64",
                    "contentMediaType": "application/avro",
                    "description": "Confluent-framed Avro (magic byte 0, the schema id), "
                    f"schema in the registry under {entry['topic']}-value",
                }
                if avro
                else {"$ref": f"#/components/schemas/{self.schema(entry, schema)}"}
            )
            envelope = {
                "type": "object",
                "description": "A CloudEvent in structured content mode (JSON format)",
                "properties": {
                    **_STRUCTURED_ATTRIBUTES,
                    "type": {"type": "string", "const": entry["type"]},
                    "datacontenttype": {"type": "string", "const": data_type},
                    ("data_base64" if avro else "data"): data,
                },
                "required": ["specversion", "id", "source", "type", "datacontenttype"],
            }
            name = f"{entry.get('event') or entry['type']}CloudEvent"
            return {
                "contentType": "application/cloudevents+json; charset=UTF-8",
                "correlationId": {"location": "$message.payload#/correlationid"},
                "headers": {"$ref": self.header_schema("structured", "")},
                "payload": {"$ref": f"#/components/schemas/{self._add(name, envelope)}"},
            }
        if avro and entry.get("avro_schema") is not None:
            payload = {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": entry["avro_schema"]}
            payload_id = self._add(entry.get("event") or entry["type"], payload)
        else:
            payload_id = self.schema(entry, schema)
        return {
            "contentType": data_type,
            "correlationId": {"location": "$message.header#/ce_correlationid"},
            "headers": {"$ref": self.header_schema("binary", data_type)},
            "payload": {"$ref": f"#/components/schemas/{payload_id}"},
        }

    def header_schema(self, mode: str, content_type: str) -> str:
        """The shared header schema of one content mode (and data media type)."""
        if mode == "structured":
            name = "CloudEventsStructuredHeaders"
            schema: dict[str, Any] = {
                "type": "object",
                "description": "Headers beside a CloudEvent in Kafka structured content mode",
                "properties": STRUCTURED_HEADERS,
                "required": ["content-type"],
            }
        else:
            name = (
                "CloudEventsHeaders"
                if content_type == "application/json"
                else ("CloudEventsHeaders_" + _component_id(content_type.split("/")[-1]))
            )
            schema = {
                "type": "object",
                "description": "CloudEvents 1.0 attributes in Kafka binary content mode",
                "properties": {
                    **CLOUDEVENTS_HEADERS,
                    "content-type": {"type": "string", "const": content_type},
                },
                "required": _REQUIRED_HEADERS,
            }
        self.headers.setdefault(name, schema)
        return f"#/components/schemas/{name}"

    def _add(self, name: str, schema: dict[str, Any]) -> str:
        schema_id = self._free_id(name, schema)
        self.schemas[schema_id] = schema
        return schema_id

    def schema(self, entry: dict[str, Any], schema: dict[str, Any]) -> str:
        """Add a payload schema to components.schemas, its ``$defs`` beside it, the references
        rewritten to point there; returns its id."""
        schema = copy.deepcopy(schema)
        definitions = schema.pop("$defs", {})
        renamed = {name: self._free_id(name, definitions[name]) for name in definitions}
        rewrite = {f"#/$defs/{old}": f"#/components/schemas/{new}" for old, new in renamed.items()}
        for old, new in renamed.items():
            self.schemas[new] = _rewrite_refs(definitions[old], rewrite)
        schema = _rewrite_refs(schema, rewrite)
        schema_id = self._free_id(entry.get("event") or entry["type"], schema)
        self.schemas[schema_id] = schema
        return schema_id

    def _free_id(self, name: str, schema: dict[str, Any]) -> str:
        """``name``, unless another schema already took it (two services' models may share a
        class name): then a suffixed one."""
        base = candidate = _component_id(name)
        n = 1
        while (
            candidate in self.schemas and self.schemas[candidate] != schema
        ) or candidate in self.headers:
            n += 1
            candidate = f"{base}_{n}"
        return candidate

    def operation(
        self,
        name: str,
        service: dict[str, Any],
        action: str,
        topic: str,
        message_id: str | None,
        *,
        table: bool = False,
    ) -> None:
        channel_id = self.channel(topic)
        operation_id = _component_id(f"{name}.{action}.{topic}")
        operation = self.operations.get(operation_id)
        if operation is None:
            verb = "emits to" if action == "send" else "consumes"
            operation = self.operations[operation_id] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{name} {verb} {topic}",
                "x-nerve-service": name,
            }
            if service.get("description"):
                operation["description"] = service["description"]
            if table:  # read whole by every replica, outside the consumer group
                operation["summary"] = f"{name} keeps a table of {topic}"
                operation["x-nerve-table"] = True
            elif action == "receive":
                operation["bindings"] = {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [service.get("group") or name]},
                        "bindingVersion": "0.5.0",
                    }
                }
        if message_id is not None:
            ref = {"$ref": f"#/channels/{channel_id}/messages/{message_id}"}
            operation.setdefault("messages", [])
            if ref not in operation["messages"]:
                operation["messages"].append(ref)


def _rewrite_refs(value: Any, rewrite: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                rewrite.get(v, v)
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v, rewrite)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(v, rewrite) for v in value]
    return value
