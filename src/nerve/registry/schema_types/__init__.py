"""The schema types the registry understands (AVRO, JSON, PROTOBUF) behind one interface.

Each type module offers ``parse(text, references) -> ParsedSchema`` and the parsed schema can say
whether it reads data written with another schema of its type. The registry never looks inside a
schema itself; everything type-specific lives in these modules.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


class InvalidSchema(ValueError):
    """The schema text does not parse as its type; the message says where and why (HTTP 42201)."""


class TooComplex(InvalidSchema):
    """Parsing or comparing would take more than the registry allows (a limit of ``Limits``)."""


@dataclass
class Limits:
    """What one schema may cost, set from the registry's settings (``RegistryConfig``).

    Process-wide rather than per request because parsed schemas are cached across requests.
    """

    max_depth: int = 1000  # JSON nesting levels of a schema document (Jackson's default)
    max_steps: int = 2_000_000  # comparisons one compatibility check may make


LIMITS = Limits()

# Python frames one level of nesting may take across the parsers and checkers (measured: Avro
# arrays take 3 when checked, JSON Schema up to 6 through jsonschema's meta-schema check).
_FRAMES_PER_LEVEL = 10


def configure(limits: Limits) -> None:
    """Use ``limits`` from now on, and let the interpreter recurse as deeply as a document of
    ``max_depth`` levels makes these modules recurse. Python's default (1000 frames) stops
    them at a third of Jackson's 1000 levels; the documents are measured before any parser
    recurses, so the deeper limit is only ever reached by inputs that were allowed."""
    LIMITS.max_depth = limits.max_depth
    LIMITS.max_steps = limits.max_steps
    needed = _FRAMES_PER_LEVEL * limits.max_depth + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


class Budget:
    """Steps left for one compatibility check; a check that runs out is refused, so a hostile
    pair of schemas (say two unions of 10,000 branches) cannot occupy a worker for minutes."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = LIMITS.max_steps if limit is None else limit
        self.left = self.limit

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooComplex(
                f"the compatibility check needs more than {self.limit} steps (max.check.steps)"
            )


# A JSON string, written so that the regex engine never backtracks into it.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects, in linear time and without recursing."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def load_json(text: str, what: str, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """JSON text as Python values, refusing documents nested deeper than ``LIMITS.max_depth``
    with that reason (Python's own parser would otherwise fail on recursion, or succeed and
    leave the recursion to whatever walks the result)."""
    # Each level takes two characters at least, so short texts need no scan.
    depth = json_depth(text) if len(text) > 2 * LIMITS.max_depth else 0
    if depth > LIMITS.max_depth:
        raise TooComplex(
            f"{what} nests {depth} levels deep; the limit is {LIMITS.max_depth} (max.schema.depth)"
        )
    try:
        return json.loads(text, parse_constant=parse_constant)
    except json.JSONDecodeError as e:
        raise InvalidSchema(
            f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except (ValueError, TypeError) as e:
        raise InvalidSchema(f"{what} is not valid JSON: {e}") from None


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
    def incompatibilities(
        self, writer: ParsedSchema, budget: Budget | None = None
    ) -> list[Incompatibility]:
        """Why this schema, as reader, cannot read data written with ``writer``; empty if it can.

        ``budget`` bounds the work (one per request, shared by its checks); raises TooComplex
        when it runs out."""

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
