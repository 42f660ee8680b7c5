"""The schema types the registry understands (AVRO, JSON, PROTOBUF) behind one interface.

Each type module offers ``parse(text, references) -> ParsedSchema`` and the parsed schema can say
whether it reads data written with another schema of its type. The registry never looks inside a
schema itself; everything type-specific lives in these modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar


class InvalidSchema(ValueError):
    """The schema text does not parse as its type; the message says where and why (HTTP 42201)."""


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data: where, which rule, and a sentence."""

    path: str  # where in the schema, e.g. "/fields/amount" or "#/properties/total" or "Order.id"
    rule: str  # the rule broken, a stable UPPER_SNAKE name such as TYPE_MISMATCH
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.rule})"


class ParsedSchema(ABC):
    """A schema that parsed; immutable, comparable by its canonical form."""

    schema_type: ClassVar[str]

    @abstractmethod
    def canonical(self) -> str:
        """The text the registry stores and serves: compact, stable, meaning-preserving.

        Like Confluent's ``canonicalString``: Avro and JSON as compact JSON (key order kept),
        Protobuf as ``.proto`` text even when registered as a serialized descriptor. Two
        registrations with the same canonical text (and references) are the same schema.
        """

    def normalized(self) -> str:
        """The text stored for ``normalize=true``: also equal for schemas that differ only in
        ways that cannot change what they mean (key order, defaults spelled out, ...)."""
        return self.canonical()

    def formatted(self, fmt: str | None) -> str:
        """The text for ``?format=``; the canonical text unless the type knows the format
        (Protobuf's ``serialized``: a base64 ``FileDescriptorProto``)."""
        return self.canonical()

    @abstractmethod
    def incompatibilities(self, writer: ParsedSchema) -> list[Incompatibility]:
        """Why this schema, as reader, cannot read data written with ``writer``; empty if it can."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParsedSchema) and (
            self.schema_type,
            self.canonical(),
        ) == (other.schema_type, other.canonical())

    def __hash__(self) -> int:
        return hash((self.schema_type, self.canonical()))


# A reference's name (Avro: the full name of a type; JSON: the $ref URI; Protobuf: the import
# path) mapped to the referenced schema's text, with that schema's own references already
# resolved in the same mapping (the registry flattens the reference graph before parsing), in
# dependency order: a schema comes after the schemas it refers to.
References = Mapping[str, str]
