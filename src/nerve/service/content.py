"""What an event's data is, by its media type (the CloudEvents ``datacontenttype``, carried in
Kafka's ``content-type`` header), and reading a typed event from it.

The media type is the writer's word for its bytes: JSON (``*/json``, ``*/*+json``, as the
CloudEvents JSON format defines it), Avro or Protobuf (Confluent-framed, the writer's schema
fetched from the registry by the id in the value), text. A record without one (a plain
producer's) is read in the format its event class declares, as before. Data of a type an event
class cannot be read from is refused with the reason, never guessed at as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from nerve.service.avro import AvroCodec
    from nerve.service.protobuf import ProtobufReader

JSON = "json"
AVRO = "avro"
PROTOBUF = "protobuf"
TEXT = "text"
STRUCTURED = "structured"  # a whole CloudEvent in the value (structured content mode)
OTHER = "other"

# Avro and Protobuf have no registered media type; these are the names in use (the Kafka
# binding's own example says application/avro).
_AVRO = {"application/avro", "avro/binary", "application/vnd.apache.avro+binary"}
_PROTOBUF = {"application/protobuf", "application/x-protobuf", "application/vnd.google.protobuf"}

_kinds: dict[str, str | None] = {"application/json": JSON, "application/avro": AVRO}


class ContentError(ValueError):
    """Data that the event class cannot be read from (its media type, or a missing reader)."""


def kind(content_type: str | None) -> str | None:
    """JSON, AVRO, PROTOBUF, TEXT, STRUCTURED or OTHER; None when no type is given.

    Asked once per record: the answer for each distinct header value is kept (a topic's
    records carry a handful of them)."""
    if content_type is None:
        return None
    found = _kinds.get(content_type, "")
    if found == "":
        found = _classify(content_type)
        if len(_kinds) < 256:
            _kinds[content_type] = found
    return found


def _classify(content_type: str) -> str | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if not media:
        return None
    if media.startswith("application/cloudevents"):  # the binding: matched without case
        return STRUCTURED
    if media in _AVRO:
        return AVRO
    if media in _PROTOBUF:
        return PROTOBUF
    major, _, subtype = media.partition("/")
    if subtype == "json" or subtype.endswith("+json"):
        return JSON
    if major == "text":
        return TEXT
    return OTHER


class EventReader:
    """Reads events of any class from JSON, Avro or Protobuf data, whatever format the class
    itself writes: the writer chose the encoding, the model is the reader.

    Avro and Protobuf need the registry (writer schemas by id); their readers are made on
    first use, so a service that only ever sees JSON never talks to the registry for reading.
    """

    def __init__(self, registry_url: str | None, avro: AvroCodec | None = None) -> None:
        self.registry_url = registry_url
        self._avro = avro
        self._protobuf: ProtobufReader | None = None

    def read(
        self, event_type: type[BaseModel], data: bytes | None, content_type: str | None
    ) -> Any:
        """An instance of ``event_type`` (an Event class, or any pydantic model: a table's)
        from the data."""
        if data is None:
            raise ContentError("the record has no value (a tombstone)")
        found = kind(content_type)
        own_format = getattr(event_type, "value_format", "json")
        if found is None:  # no media type (a plain producer's record): the class's format
            found = AVRO if own_format == "avro" else JSON
        if found == JSON:
            # A reader keeps the fields it does not know (a producer added one) in
            # model_extra instead of refusing the event; constructing one still refuses them.
            return event_type.model_validate_json(data, extra="allow")
        if found == AVRO:
            codec = self.avro()
            if own_format == "avro":
                return codec.decode(event_type, data)  # resolved against the class's schema
            return event_type.model_validate(codec.read(data), extra="allow")
        if found == PROTOBUF:
            return event_type.model_validate(self.protobuf().read(data), extra="allow")
        raise ContentError(
            f"{content_type} data cannot be read as {event_type.__name__} "
            "(it reads JSON, Avro and Protobuf)"
        )

    def avro(self) -> AvroCodec:
        if self._avro is None:
            if not self.registry_url:
                raise ContentError("Avro data needs a schema registry; none is configured")
            from nerve.service.avro import AvroCodec

            self._avro = AvroCodec(self.registry_url)
        return self._avro

    def protobuf(self) -> ProtobufReader:
        if self._protobuf is None:
            if not self.registry_url:
                raise ContentError("Protobuf data needs a schema registry; none is configured")
            from nerve.service.protobuf import ProtobufReader

            self._protobuf = ProtobufReader(self.registry_url)
        return self._protobuf
