"""The schema types the registry understands (AVRO, JSON, PROTOBUF) behind one interface.

Each type module offers ``parse(text, references) -> ParsedSchema`` and the parsed schema can say
whether it reads data written with another schema of its type. The registry never looks inside a
schema itself; everything type-specific lives in these modules.
"""

from __future__ import annotations

import decimal
import itertools
import json
import math
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


def java_double(value: float) -> str:
    """A double as Java's ``Double.toString`` (and so Jackson) writes it: ``1.0``, ``0.001``,
    ``1.0E7``, ``1.0E-4``; non-finite values quoted, as Jackson quotes them."""
    if value != value:
        return '"NaN"'
    if value in (math.inf, -math.inf):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = exponent + len(digits) - 1  # value = d.ddd x 10^point
    minus = "-" if sign else ""
    if 1e-3 <= abs(value) < 1e7:
        if point >= 0:
            whole = text[: point + 1].ljust(point + 1, "0")
            return f"{minus}{whole}.{text[point + 1 :] or '0'}"
        return f"{minus}0.{'0' * (-point - 1)}{text}"
    return f"{minus}{text[0]}.{text[1:] or '0'}E{point}"


_LOWER_ESCAPE = re.compile(r"(\\+)u00([0-9a-f]{2})")


def _upper_escape(match: re.Match[str]) -> str:
    slashes = match.group(1)
    if len(slashes) % 2 == 0:  # an escaped backslash followed by text, not an escape
        return match.group(0)
    return f"{slashes}u00{match.group(2).upper()}"


def jackson_text(value: Any, floats: bool = True) -> str:
    """Compact JSON as Jackson writes it: keys in the order given, text unescaped but for
    quotes, backslashes and control characters (``\\u001F``, upper case), doubles as Java
    writes them. ``floats=False`` promises there are none, for json.dumps' C speed."""
    if floats:
        parts: list[str] = []
        _write(value, parts)
        text = "".join(parts)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "\\u00" in text:
        text = _LOWER_ESCAPE.sub(_upper_escape, text)
    return text


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, float):
        out.append(java_double(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def has_float(value: Any) -> bool:
    """Whether a JSON value holds a float anywhere (so needs ``jackson_text``'s slow path)."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


# A JSON string, written so that the regex engine never backtracks into it.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects, in linear time and without recursing."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def load_json(
    text: str,
    what: str,
    parse_constant: Callable[[str], Any] | None = None,
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
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
        return json.loads(text, parse_constant=parse_constant, parse_float=parse_float)
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

    def equivalent(self, other: ParsedSchema) -> bool:
        """Whether looking up ``other`` under a subject finds this schema: Confluent's
        ``canLookup``, which compares parsed schemas, not texts. The canonical text by default;
        types whose Confluent equality ignores more (key order, say) say so."""
        return self == other

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
