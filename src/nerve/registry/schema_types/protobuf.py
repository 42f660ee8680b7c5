"""PROTOBUF schemas: parse ``.proto`` text or base64 descriptors, render, compare.

Clients register Protobuf schemas in two forms: ``.proto`` text (the Java serializer, people with
curl) and a base64-encoded serialized ``FileDescriptorProto`` (confluent-kafka-python, which also
reads schemas back with ``?format=serialized``). Both end up as one compiled, cross-linked
``FileDescriptorProto``: text is compiled by protoc (the copy bundled in ``grpcio-tools``, run in
this process), and descriptors are fed through the same protoc run (``--descriptor_set_in``) so
that they are validated and normalised the same way. Everything after that works on the
descriptor: the canonical text is printed from it and compatibility compares descriptors.

Compatibility follows the rules of Confluent's ``protobuf/diff`` package (``Difference.Type``):
the rule names are theirs, and so is the split into compatible and incompatible changes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import importlib
import importlib.resources
import os
import pkgutil
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from google.protobuf import descriptor_pb2, message_factory, text_format
from google.protobuf import descriptor_pool as _descriptor_pool
from google.protobuf.message import DecodeError, Message

from nerve.registry.schema_types import (
    Budget,
    Incompatibility,
    InvalidSchema,
    ParsedSchema,
    References,
)
from nerve.registry.schema_types.protobuf_options import (
    ForeignOption,
    Key,
    attach,
    blank_out,
    unknown_option_errors,
)

__all__ = ["ProtobufSchema", "parse"]

FDP: TypeAlias = descriptor_pb2.FileDescriptorProto
FieldProto: TypeAlias = descriptor_pb2.FieldDescriptorProto
MessageProto: TypeAlias = descriptor_pb2.DescriptorProto
EnumProto: TypeAlias = descriptor_pb2.EnumDescriptorProto

# The name a ``.proto`` text gets when it is compiled; it shows up in protoc's error messages.
_MAIN_NAME = "schema.proto"
# Where a main file given as a descriptor is compiled, away from the names of its imports.
_DESCRIPTOR_MAIN_DIR = "__nerve_main__/"
# Imports a client may leave without a reference: the Python serializer skips these prefixes
# (``_is_builtin``) and Confluent's registry resolves them itself.
_BUILTIN_PREFIXES = ("confluent/", "google/protobuf/", "google/type/")
# Python modules whose descriptors provide the builtins that grpc_tools does not bundle as text.
_BUILTIN_MODULES = (
    "confluent_kafka.schema_registry.confluent.meta_pb2",
    "confluent_kafka.schema_registry.confluent.type.decimal_pb2",
    "confluent_kafka.schema_registry.confluent.type.variant_pb2",
    "confluent_kafka.schema_registry.confluent.types.decimal_pb2",
)
_MAX_FIELD_NUMBER = 536_870_911  # 2**29 - 1, what ``max`` means in a message's ranges
_MAX_ENUM_NUMBER = 2_147_483_647  # what ``max`` means in an enum's reserved ranges
_EDITION_2023 = 1000

_SCALAR_NAMES = {
    FieldProto.TYPE_DOUBLE: "double",
    FieldProto.TYPE_FLOAT: "float",
    FieldProto.TYPE_INT64: "int64",
    FieldProto.TYPE_UINT64: "uint64",
    FieldProto.TYPE_INT32: "int32",
    FieldProto.TYPE_FIXED64: "fixed64",
    FieldProto.TYPE_FIXED32: "fixed32",
    FieldProto.TYPE_BOOL: "bool",
    FieldProto.TYPE_STRING: "string",
    FieldProto.TYPE_BYTES: "bytes",
    FieldProto.TYPE_UINT32: "uint32",
    FieldProto.TYPE_SFIXED32: "sfixed32",
    FieldProto.TYPE_SFIXED64: "sfixed64",
    FieldProto.TYPE_SINT32: "sint32",
    FieldProto.TYPE_SINT64: "sint64",
}

# Scalar types that read each other's encoding, as Confluent groups them (FieldSchemaDiff's
# ScalarKind, after the "Updating a message type" section of the protobuf guide). Changing a
# field's type within a group is compatible; across groups it is FIELD_SCALAR_KIND_CHANGED.
# Enums count as varints (the first group). float and double are each a group of their own.
_SCALAR_GROUPS = {
    FieldProto.TYPE_INT32: "varint",
    FieldProto.TYPE_INT64: "varint",
    FieldProto.TYPE_UINT32: "varint",
    FieldProto.TYPE_UINT64: "varint",
    FieldProto.TYPE_BOOL: "varint",
    FieldProto.TYPE_ENUM: "varint",
    FieldProto.TYPE_SINT32: "zigzag",
    FieldProto.TYPE_SINT64: "zigzag",
    FieldProto.TYPE_STRING: "length-delimited",
    FieldProto.TYPE_BYTES: "length-delimited",
    FieldProto.TYPE_FIXED32: "fixed32",
    FieldProto.TYPE_SFIXED32: "fixed32",
    FieldProto.TYPE_FIXED64: "fixed64",
    FieldProto.TYPE_SFIXED64: "fixed64",
    FieldProto.TYPE_FLOAT: "float",
    FieldProto.TYPE_DOUBLE: "double",
}


# --------------------------------------------------------------------------------------------
# Parsing


def parse(text: str, references: References | None = None) -> ProtobufSchema:
    """Parse ``.proto`` text or a base64 ``FileDescriptorProto`` into a compiled schema.

    ``references`` maps import paths to the imported files' texts (either form). Imports of
    ``google/protobuf/``, ``google/type/`` and ``confluent/`` files need no reference. Raises
    :class:`InvalidSchema` with protoc's ``file:line:col: message`` when the schema is invalid.
    Results are cached: compiling runs protoc, which takes milliseconds, not microseconds.
    """
    return _parse_cached(text, tuple((references or {}).items()))


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str, references: tuple[tuple[str, str], ...]) -> ProtobufSchema:
    main, deps, foreign = _compile(text, dict(references))
    return ProtobufSchema(main, deps, foreign)


def _decode_descriptor(text: str) -> FDP | None:
    """The descriptor ``text`` encodes, or None when it is ``.proto`` text.

    ``.proto`` text that is not empty always holds a ``;``, ``{``, quote or space, none of which
    base64 uses, so the alphabet check alone keeps text away from the decoder.
    """
    stripped = text.strip()
    if not stripped or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", stripped):
        return None
    try:
        raw = base64.b64decode(stripped, validate=True)
        fdp = FDP()
        fdp.ParseFromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        return None
    fdp.ClearField("source_code_info")
    return fdp


def _import_paths(text: str) -> list[str]:
    """Import paths named in ``.proto`` text (a plain scan; protoc has the final word)."""
    return re.findall(r'\bimport\s+(?:public\s+|weak\s+)?["\']([^"\']+)["\']', text)


def _safe_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "\\" not in path


def _compile(
    text: str, references: Mapping[str, str]
) -> tuple[FDP, tuple[FDP, ...], Mapping[Key, tuple[ForeignOption, ...]]]:
    """Run protoc over the schema and its references; the main file, all it imports, and the
    custom options the main file uses without defining them (kept as Confluent keeps them:
    see protobuf_options)."""
    sources: dict[str, str] = {}  # import path -> .proto text, written to the source tree
    descriptors: dict[str, FDP] = {}  # import path -> descriptor, fed as --descriptor_set_in
    imports: list[str] = []
    for name, ref_text in references.items():
        if not _safe_relative(name):
            raise InvalidSchema(f"invalid reference name {name!r}: not a relative import path")
        ref_fdp = _decode_descriptor(ref_text)
        if ref_fdp is None:
            sources[name] = ref_text
            imports.extend(_import_paths(ref_text))
        else:
            ref_fdp.name = name  # the reference's name is the import path (as the client does)
            descriptors[name] = ref_fdp
            imports.extend(ref_fdp.dependency)

    main_fdp = _decode_descriptor(text)
    if main_fdp is None:
        main_name = _MAIN_NAME
        while main_name in references:
            main_name = "_" + main_name
        sources[main_name] = text
        imports.extend(_import_paths(text))
        original_name = main_name
    else:
        # Nothing imports the main file, so it can be compiled under a name of our choosing.
        original_name = main_fdp.name
        main_name = _DESCRIPTOR_MAIN_DIR + (main_fdp.name or _MAIN_NAME)
        main_fdp.name = main_name
        descriptors[main_name] = main_fdp
        imports.extend(main_fdp.dependency)

    if any(
        path.startswith(("confluent/", "google/type/")) and path not in references
        for path in imports
    ):
        for fdp in _builtin_descriptors():
            descriptors.setdefault(fdp.name, fdp)

    foreign: list[ForeignOption] = []
    try:
        files = _run_protoc(main_name, sources, descriptors)
    except _ProtocFailed as failed:
        unknown = unknown_option_errors(failed.lines)
        if unknown is None or not set(unknown) <= set(sources):
            raise InvalidSchema(failed.message) from None
        for name, positions in unknown.items():
            sources[name], taken = blank_out(sources[name], positions)
            if name == main_name:
                foreign = taken
        try:
            files = _run_protoc(main_name, sources, descriptors, source_info=bool(foreign))
        except _ProtocFailed as again:
            raise InvalidSchema(again.message) from None
    by_name = {f.name: f for f in files}
    main = by_name.pop(main_name)
    attached = attach(main, foreign) if foreign else {}
    for fdp in files:
        fdp.ClearField("source_code_info")
    main.name = original_name
    return main, tuple(by_name.values()), attached


@functools.cache
def _builtin_descriptors() -> tuple[FDP, ...]:
    """Descriptors for ``google/type/`` and ``confluent/`` files, from installed packages.

    The ``google/protobuf/`` files come as text with grpc_tools and need nothing here.
    """
    names: list[str] = list(_BUILTIN_MODULES)
    with contextlib.suppress(ImportError):
        google_type = importlib.import_module("google.type")
        names += [
            f"google.type.{m.name}"
            for m in pkgutil.iter_modules(google_type.__path__)
            if m.name.endswith("_pb2")
        ]
    out: list[FDP] = []
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fdp = FDP()
        fdp.ParseFromString(module.DESCRIPTOR.serialized_pb)
        out.append(fdp)
    return tuple(out)


@functools.cache
def _well_known_dir() -> str:
    return str(importlib.resources.files("grpc_tools") / "_proto")


# protoc reports to the process's fd 2; redirecting it is process-wide, so one run at a time.
_PROTOC_LOCK = threading.Lock()


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send fd 2 (protoc's C++ stderr) to ``path`` for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _ProtocFailed(Exception):
    def __init__(self, lines: list[str], message: str) -> None:
        super().__init__(message)
        self.lines = lines
        self.message = message


def _run_protoc(
    main_name: str,
    sources: Mapping[str, str],
    descriptors: Mapping[str, FDP],
    source_info: bool = False,
) -> list[FDP]:
    from grpc_tools import protoc  # imported late: it loads a sizeable native module

    with tempfile.TemporaryDirectory(prefix="nerve-protoc-") as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        for name, body in sources.items():
            path = src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        args = ["protoc", f"-I{src}", f"-I{_well_known_dir()}"]
        if descriptors:
            deps_in = root / "in.pb"
            fds = descriptor_pb2.FileDescriptorSet(file=list(descriptors.values()))
            deps_in.write_bytes(fds.SerializeToString())
            args.append(f"--descriptor_set_in={deps_in}")
        out = root / "out.pb"
        errors = root / "stderr.txt"
        args += [f"--descriptor_set_out={out}", "--include_imports", main_name]
        if source_info:
            args.insert(-1, "--include_source_info")
        with _PROTOC_LOCK, _stderr_to(errors):
            status = protoc.main(args)
        if status != 0:
            lines = _protoc_lines(errors.read_text("utf-8", "replace"), src)
            raise _ProtocFailed(lines, "; ".join(lines) or "protoc could not compile the schema")
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
        return list(fds.file)


def _protoc_lines(stderr: str, src: Path) -> list[str]:
    """protoc's error lines, without logging noise and temporary directory names."""
    lines = []
    for line in stderr.splitlines():
        line = line.replace(f"{src}/", "").replace(_DESCRIPTOR_MAIN_DIR, "").strip()
        if not line or line.startswith(("WARNING: All log messages", "W0000", "I0000")):
            continue
        if "warning:" in line:
            continue
        lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------
# The schema


class ProtobufSchema(ParsedSchema):
    """A compiled ``.proto`` file: its descriptor and the descriptors of everything it imports."""

    schema_type = "PROTOBUF"

    def __init__(
        self,
        file: FDP,
        dependencies: Iterable[FDP] = (),
        foreign_options: Mapping[Key, tuple[ForeignOption, ...]] | None = None,
    ) -> None:
        self._file = FDP()
        self._file.CopyFrom(file)
        self._deps = tuple(dependencies)
        # Options the text uses without defining them: printed back, absent from the descriptor.
        self._foreign = dict(foreign_options or {})
        self._index = _TypeIndex(self._file, self._deps)
        self._canonical: str | None = None
        self._normalized: str | None = None

    @property
    def file_descriptor(self) -> FDP:
        """A copy of the compiled ``FileDescriptorProto`` (type names fully qualified)."""
        copy = FDP()
        copy.CopyFrom(self._file)
        return copy

    @property
    def dependencies(self) -> tuple[FDP, ...]:
        """Copies of the descriptors of all files the schema imports, transitively."""
        out = []
        for dep in self._deps:
            copy = FDP()
            copy.CopyFrom(dep)
            out.append(copy)
        return tuple(out)

    def canonical(self) -> str:
        if self._canonical is None:
            self._canonical = _Printer(self._file, self._index, self._foreign).render()
        return self._canonical

    def normalized(self) -> str:
        """The canonical text of the file with its declarations put in a fixed order.

        Fields are sorted by number, enum values by number (then name), nested and top-level
        enums by name, services and methods by name, imports by path and reserved ranges and
        names in ascending order. Messages keep their order: the wire format's message indexes
        count message positions, so reordering them would change what a schema id means.
        """
        if self._normalized is None:
            self._normalized = _Printer(_normalize(self._file), self._index, self._foreign).render()
        return self._normalized

    def formatted(self, fmt: str | None) -> str:
        """``serialized``: the base64 descriptor the Python serializer reads; else the text."""
        if fmt is not None and fmt.lower() == "serialized":
            return base64.standard_b64encode(self._file.SerializeToString()).decode("ascii")
        return self.canonical()

    def incompatibilities(
        self, writer: ParsedSchema, budget: Budget | None = None
    ) -> list[Incompatibility]:
        if not isinstance(writer, ProtobufSchema):
            return [
                Incompatibility(
                    "", "TYPE_CHANGED", f"cannot read {writer.schema_type} data as PROTOBUF"
                )
            ]
        return _Comparison(self._index, writer._index, budget or Budget()).run()

    def __repr__(self) -> str:
        return f"ProtobufSchema({self._file.name!r}, package={self._file.package!r})"


# --------------------------------------------------------------------------------------------
# Type lookup


@dataclass(frozen=True, slots=True)
class _TypeInfo:
    full_name: str  # without the leading dot
    package: str
    message: MessageProto | None
    enum: EnumProto | None
    in_main: bool  # declared in the schema itself rather than in an import
    file_key: bytes  # the declaring file's serialization, to tell two imports apart
    syntax: str  # of the declaring file: proto2, proto3 or editions

    @property
    def local_name(self) -> str:
        if self.package and self.full_name.startswith(self.package + "."):
            return self.full_name[len(self.package) + 1 :]
        return self.full_name

    @property
    def is_map_entry(self) -> bool:
        return self.message is not None and self.message.options.map_entry


class _TypeIndex:
    """Every message and enum visible to a schema, by full name, plus the names protoc
    resolves relative names against (types, packages, services)."""

    def __init__(self, main: FDP, deps: tuple[FDP, ...]) -> None:
        self.main = main
        self.files = (*deps, main)
        self.types: dict[str, _TypeInfo] = {}
        self.aggregates: set[str] = set()  # names a compound name's first part may resolve to
        for fdp in self.files:
            key = fdp.SerializeToString(deterministic=True)
            in_main = fdp is main
            parts = fdp.package.split(".") if fdp.package else []
            for i in range(1, len(parts) + 1):
                self.aggregates.add(".".join(parts[:i]))
            prefix = fdp.package
            for svc in fdp.service:
                self.aggregates.add(_join(prefix, svc.name))
            self._add_messages(
                fdp.message_type, fdp.enum_type, prefix, fdp.package, in_main, key, fdp.syntax
            )

    def _add_messages(
        self,
        messages: Iterable[MessageProto],
        enums: Iterable[EnumProto],
        prefix: str,
        package: str,
        in_main: bool,
        key: bytes,
        syntax: str,
    ) -> None:
        for enum in enums:
            name = _join(prefix, enum.name)
            self.types[name] = _TypeInfo(name, package, None, enum, in_main, key, syntax)
        for msg in messages:
            name = _join(prefix, msg.name)
            self.types[name] = _TypeInfo(name, package, msg, None, in_main, key, syntax)
            self._add_messages(msg.nested_type, msg.enum_type, name, package, in_main, key, syntax)

    def get(self, type_name: str) -> _TypeInfo | None:
        return self.types.get(type_name.lstrip("."))

    def syntax_of(self, type_name: str) -> str:
        info = self.get(type_name)
        return info.syntax if info is not None else self.main.syntax

    def _lookup(self, name: str, scope: str) -> str | None:
        """The full name protoc gives ``name`` written inside ``scope`` (its resolution rules:
        innermost scope first; a compound name's first part fixes where the rest is looked up).
        """
        first = name.split(".", 1)[0]
        compound = "." in name
        while True:
            candidate = _join(scope, first)
            if compound:
                if candidate in self.aggregates or candidate in self.types:
                    full = _join(scope, name)
                    return full if full in self.types else None
            elif candidate in self.types:
                return candidate
            if not scope:
                return None
            scope = scope.rpartition(".")[0]

    def short_name(self, type_name: str, scope: str) -> str:
        """The shortest way to write ``type_name`` inside ``scope`` that resolves back to it."""
        target = type_name.lstrip(".")
        parts = target.split(".")
        for i in range(len(parts) - 1, -1, -1):
            candidate = ".".join(parts[i:])
            if self._lookup(candidate, scope) == target:
                return candidate
        return "." + target


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --------------------------------------------------------------------------------------------
# Printing .proto text


def _json_name(name: str) -> str:
    """protoc's default json_name: underscores dropped, the letter after each capitalised."""
    out: list[str] = []
    upper = False
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


def _quote(value: str | bytes) -> str:
    """A .proto string literal; bytes that are not printable ASCII become octal escapes."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    out = []
    for b in raw:
        ch = chr(b)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


class _Printer:
    """Renders a compiled ``FileDescriptorProto`` as ``.proto`` text, deterministically.

    Only what the descriptor holds is printed (comments and formatting are gone after
    compiling); type names are written as short as they can be while still resolving to the
    same type. Custom options are printed when ``descriptor.proto`` is among the imports
    (a custom option cannot be declared without it).
    """

    def __init__(
        self,
        fdp: FDP,
        index: _TypeIndex,
        foreign: Mapping[Key, tuple[ForeignOption, ...]] | None = None,
    ) -> None:
        self.fdp = fdp
        self.index = index
        self.foreign = foreign or {}
        self.lines: list[str] = []
        self.editions = fdp.syntax == "editions"
        self.proto3 = fdp.syntax == "proto3"
        self.options = _OptionRenderer(index.files)

    def render(self) -> str:
        fdp = self.fdp
        if self.editions:
            self.lines.append(f"edition = {_quote(_edition_name(fdp.edition))};")
        else:
            self.lines.append(f'syntax = "{fdp.syntax or "proto2"}";')
        if fdp.package:
            self.lines.append(f"package {fdp.package};")
        if fdp.dependency:
            self.lines.append("")
            public = set(fdp.public_dependency)
            weak = set(fdp.weak_dependency)
            for i, dep in enumerate(fdp.dependency):
                kind = "public " if i in public else "weak " if i in weak else ""
                self.lines.append(f"import {kind}{_quote(dep)};")
        option_lines = self.options.statements(fdp.options, "FileOptions")
        option_lines += self._foreign_statements(("file",))
        if option_lines:
            self.lines.append("")
            self.lines.extend(option_lines)
        scope = fdp.package
        for msg in fdp.message_type:
            self.lines.append("")
            self._message(msg, _join(scope, msg.name), 0)
        for enum in fdp.enum_type:
            self.lines.append("")
            self._enum(enum, 0, _join(scope, enum.name))
        self._extensions(fdp.extension, scope, 0, blank_before=True)
        for svc in fdp.service:
            self.lines.append("")
            self._service(svc, _join(scope, svc.name))
        return "\n".join(self.lines) + "\n"

    def _emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def _foreign_statements(self, key: Key) -> list[str]:
        return [f"option {o.text};" for o in self.foreign.get(key, ()) if not o.inline]

    def _foreign_inline(self, key: Key) -> list[str]:
        return [o.text for o in self.foreign.get(key, ()) if o.inline]

    def _message(self, msg: MessageProto, full_name: str, depth: int, head: str = "") -> None:
        self._emit(depth, head or f"message {msg.name} {{")
        inner = depth + 1
        for line in self.options.statements(msg.options, "MessageOptions"):
            self._emit(inner, line)
        for line in self._foreign_statements(("message", full_name)):
            self._emit(inner, line)
        self._reserved(msg.reserved_range, msg.reserved_name, _MAX_FIELD_NUMBER + 1, inner)
        for ext_range in msg.extension_range:
            opts = self.options.inline(ext_range.options, "ExtensionRangeOptions")
            text = _range_text(ext_range.start, ext_range.end - 1, _MAX_FIELD_NUMBER)
            self._emit(inner, f"extensions {text}{opts};")

        # Nested types printed with their field (maps, groups) are not printed again.
        hidden = {
            f.type_name.lstrip(".")
            for f in msg.field
            if f.type == FieldProto.TYPE_GROUP or self._map_entry(f) is not None
        }
        printed_oneofs: set[int] = set()
        for f in msg.field:
            if f.HasField("oneof_index") and not f.proto3_optional:
                idx = f.oneof_index
                if idx in printed_oneofs:
                    continue
                printed_oneofs.add(idx)
                decl = msg.oneof_decl[idx]
                self._emit(inner, f"oneof {decl.name} {{")
                for line in self.options.statements(decl.options, "OneofOptions"):
                    self._emit(inner + 1, line)
                for line in self._foreign_statements(("oneof", full_name, decl.name)):
                    self._emit(inner + 1, line)
                for member in msg.field:
                    if (
                        member.HasField("oneof_index")
                        and member.oneof_index == idx
                        and not member.proto3_optional
                    ):
                        self._field(member, msg, full_name, inner + 1, in_oneof=True)
                self._emit(inner, "}")
            else:
                self._field(f, msg, full_name, inner)
        # A oneof without fields (legal in a descriptor, not in text) is dropped.
        for nested in msg.nested_type:
            nested_name = _join(full_name, nested.name)
            if nested_name in hidden:
                continue
            self._message(nested, nested_name, inner)
        for enum in msg.enum_type:
            self._enum(enum, inner, _join(full_name, enum.name))
        self._extensions(msg.extension, full_name, inner, blank_before=False)
        self._emit(depth, "}")

    def _map_entry(self, f: FieldProto) -> MessageProto | None:
        if f.type != FieldProto.TYPE_MESSAGE or f.label != FieldProto.LABEL_REPEATED:
            return None
        info = self.index.get(f.type_name)
        if info is None or not info.is_map_entry:
            return None
        return info.message

    def _type_text(self, f: FieldProto, scope: str) -> str:
        if f.type in _SCALAR_NAMES:
            return _SCALAR_NAMES[f.type]
        return self.index.short_name(f.type_name, scope)

    def _label(self, f: FieldProto, in_oneof: bool) -> str:
        if f.label == FieldProto.LABEL_REPEATED:
            return "repeated "
        if in_oneof or self.editions:
            return ""
        if f.label == FieldProto.LABEL_REQUIRED:
            return "required "
        if self.proto3:
            return "optional " if f.proto3_optional else ""
        return "optional "

    def _field(
        self,
        f: FieldProto,
        msg: MessageProto | None,
        scope: str,
        depth: int,
        in_oneof: bool = False,
    ) -> None:
        entry = self._map_entry(f)
        opts = self._field_options(f, ("field", scope, f.number) if msg is not None else None)
        if entry is not None:
            key = next(x for x in entry.field if x.number == 1)
            value = next(x for x in entry.field if x.number == 2)
            kv = f"{self._type_text(key, scope)}, {self._type_text(value, scope)}"
            self._emit(depth, f"map<{kv}> {f.name} = {f.number}{opts};")
            return
        label = self._label(f, in_oneof)
        if f.type == FieldProto.TYPE_GROUP:
            info = self.index.get(f.type_name)
            if info is not None and info.message is not None:
                group = info.message
                head = f"{label}group {group.name} = {f.number}{opts} {{"
                self._message(group, info.full_name, depth, head=head)
                return
        self._emit(depth, f"{label}{self._type_text(f, scope)} {f.name} = {f.number}{opts};")

    def _field_options(self, f: FieldProto, key: Key | None = None) -> str:
        parts: list[str] = []
        if f.HasField("default_value"):
            parts.append(f"default = {self._default(f)}")
        if f.HasField("json_name") and f.json_name != _json_name(f.name):
            parts.append(f"json_name = {_quote(f.json_name)}")
        parts.extend(self.options.assignments(f.options, "FieldOptions"))
        if key is not None:
            parts.extend(self._foreign_inline(key))
        return f" [{', '.join(parts)}]" if parts else ""

    @staticmethod
    def _default(f: FieldProto) -> str:
        if f.type == FieldProto.TYPE_STRING:
            return _quote(f.default_value)
        if f.type == FieldProto.TYPE_BYTES:
            return f'"{f.default_value}"'  # the descriptor keeps bytes defaults C-escaped
        return f.default_value

    def _extensions(
        self, extensions: Iterable[FieldProto], scope: str, depth: int, blank_before: bool
    ) -> None:
        groups: dict[str, list[FieldProto]] = {}
        for ext in extensions:
            groups.setdefault(ext.extendee, []).append(ext)
        for extendee, fields in groups.items():
            if blank_before:
                self.lines.append("")
            self._emit(depth, f"extend {self.index.short_name(extendee, scope)} {{")
            for f in fields:
                self._field(f, None, scope, depth + 1)
            self._emit(depth, "}")

    def _enum(self, enum: EnumProto, depth: int, full_name: str) -> None:
        self._emit(depth, f"enum {enum.name} {{")
        inner = depth + 1
        for line in self.options.statements(enum.options, "EnumOptions"):
            self._emit(inner, line)
        for line in self._foreign_statements(("enum", full_name)):
            self._emit(inner, line)
        self._reserved(enum.reserved_range, enum.reserved_name, _MAX_ENUM_NUMBER, inner)
        for value in enum.value:
            parts = self.options.assignments(value.options, "EnumValueOptions")
            parts += self._foreign_inline(("value", full_name, value.name))
            opts = f" [{', '.join(parts)}]" if parts else ""
            self._emit(inner, f"{value.name} = {value.number}{opts};")
        self._emit(depth, "}")

    def _reserved(
        self, ranges: Iterable[Any], names: Iterable[str], end_max: int, depth: int
    ) -> None:
        # Message ranges are end-exclusive, enum ranges end-inclusive.
        exclusive = end_max == _MAX_FIELD_NUMBER + 1
        texts = [
            _range_text(r.start, r.end - 1 if exclusive else r.end, end_max - exclusive)
            for r in ranges
        ]
        if texts:
            self._emit(depth, f"reserved {', '.join(texts)};")
        names = list(names)
        if names:
            spelled = names if self.editions else [_quote(n) for n in names]
            self._emit(depth, f"reserved {', '.join(spelled)};")

    def _service(self, svc: descriptor_pb2.ServiceDescriptorProto, full_name: str) -> None:
        self._emit(0, f"service {svc.name} {{")
        for line in self.options.statements(svc.options, "ServiceOptions"):
            self._emit(1, line)
        for line in self._foreign_statements(("service", full_name)):
            self._emit(1, line)
        for method in svc.method:
            arg = self.index.short_name(method.input_type, full_name)
            ret = self.index.short_name(method.output_type, full_name)
            if method.client_streaming:
                arg = "stream " + arg
            if method.server_streaming:
                ret = "stream " + ret
            head = f"rpc {method.name}({arg}) returns ({ret})"
            body = self.options.statements(method.options, "MethodOptions")
            body += self._foreign_statements(("method", full_name, method.name))
            if body:
                self._emit(1, head + " {")
                for line in body:
                    self._emit(2, line)
                self._emit(1, "}")
            else:
                self._emit(1, head + ";")
        self._emit(0, "}")


def _range_text(start: int, end: int, max_value: int) -> str:
    if end == start:
        return str(start)
    return f"{start} to {'max' if end == max_value else end}"


def _edition_name(edition: int) -> str:
    name = descriptor_pb2.Edition.Name(edition) if edition else "EDITION_2023"
    return name.removeprefix("EDITION_")


class _OptionRenderer:
    """Option statements from options messages, standard and custom.

    Custom options are extensions: the descriptor classes compiled into the protobuf runtime do
    not know them, so when the schema's files declare any, options are re-read through a pool
    built from those files, where the extensions are known.
    """

    def __init__(self, files: Iterable[FDP]) -> None:
        self.files = tuple(files)
        self._classes: dict[str, type[Message]] | None = None

    def _custom_class(self, options_type: str) -> type[Message] | None:
        if self._classes is None:
            self._classes = {}
            if any(f.name == "google/protobuf/descriptor.proto" for f in self.files):
                with contextlib.suppress(Exception):
                    pool = _descriptor_pool.DescriptorPool()
                    for f in self.files:
                        pool.AddSerializedFile(f.SerializeToString())
                    for name in (
                        "FileOptions",
                        "MessageOptions",
                        "FieldOptions",
                        "OneofOptions",
                        "EnumOptions",
                        "EnumValueOptions",
                        "ServiceOptions",
                        "MethodOptions",
                        "ExtensionRangeOptions",
                    ):
                        desc = pool.FindMessageTypeByName(f"google.protobuf.{name}")
                        self._classes[name] = message_factory.GetMessageClass(desc)
        return self._classes.get(options_type)

    def assignments(self, options: Message, options_type: str) -> list[str]:
        """``name = value`` for every option set, in field-number order."""
        if options.ByteSize() == 0:
            return []
        cls = self._custom_class(options_type)
        if cls is not None:
            dynamic = cls()
            dynamic.ParseFromString(options.SerializeToString())
            options = dynamic
        out: list[str] = []
        _flatten(options, "", out)
        return out

    def statements(self, options: Message, options_type: str) -> list[str]:
        return [f"option {a};" for a in self.assignments(options, options_type)]

    def inline(self, options: Message, options_type: str) -> str:
        parts = self.assignments(options, options_type)
        return f" [{', '.join(parts)}]" if parts else ""


def _flatten(msg: Message, prefix: str, out: list[str]) -> None:
    for fd, value in msg.ListFields():
        if fd.name == "uninterpreted_option":
            continue
        name = f"({fd.full_name})" if fd.is_extension else fd.name
        path = f"{prefix}.{name}" if prefix else name
        is_repeated = fd.is_repeated
        values = list(value) if is_repeated else [value]
        for v in values:
            if fd.type in (fd.TYPE_MESSAGE, fd.TYPE_GROUP):
                if is_repeated:
                    out.append(f"{path} = {{ {text_format.MessageToString(v, as_one_line=True)} }}")
                else:
                    _flatten(v, path, out)
            else:
                out.append(f"{path} = {_option_value(fd, v)}")


def _option_value(fd: Any, value: Any) -> str:
    if fd.type == fd.TYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else str(value)
    if fd.type == fd.TYPE_BOOL:
        return "true" if value else "false"
    if fd.type in (fd.TYPE_STRING, fd.TYPE_BYTES):
        return _quote(value)
    if fd.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(float(value))
    return str(value)


# --------------------------------------------------------------------------------------------
# Normalising


def _normalize(fdp: FDP) -> FDP:
    """A copy of ``fdp`` with declarations in a fixed order (see ProtobufSchema.normalized)."""
    out = FDP()
    out.CopyFrom(fdp)
    deps = list(out.dependency)
    public = {deps[i] for i in out.public_dependency}
    weak = {deps[i] for i in out.weak_dependency}
    ordered = sorted(deps)
    del out.dependency[:]
    out.dependency.extend(ordered)
    del out.public_dependency[:]
    out.public_dependency.extend(i for i, d in enumerate(ordered) if d in public)
    del out.weak_dependency[:]
    out.weak_dependency.extend(i for i, d in enumerate(ordered) if d in weak)
    for msg in out.message_type:
        _normalize_message(msg)
    _sort_enums(out.enum_type)
    _sort_in_place(out.extension, lambda f: (f.extendee, f.number))
    _sort_in_place(out.service, lambda s: s.name)
    for svc in out.service:
        _sort_in_place(svc.method, lambda m: m.name)
    return out


def _normalize_message(msg: MessageProto) -> None:
    _sort_in_place(msg.field, lambda f: f.number)
    _sort_in_place(msg.extension, lambda f: (f.extendee, f.number))
    _sort_in_place(msg.reserved_range, lambda r: (r.start, r.end))
    _sort_in_place(msg.extension_range, lambda r: (r.start, r.end))
    names = sorted(msg.reserved_name)
    del msg.reserved_name[:]
    msg.reserved_name.extend(names)
    for nested in msg.nested_type:
        _normalize_message(nested)
    _sort_enums(msg.enum_type)


def _sort_enums(enums: Any) -> None:
    _sort_in_place(enums, lambda e: e.name)
    for enum in enums:
        _sort_in_place(enum.value, lambda v: (v.number, v.name))
        _sort_in_place(enum.reserved_range, lambda r: (r.start, r.end))
        names = sorted(enum.reserved_name)
        del enum.reserved_name[:]
        enum.reserved_name.extend(names)


def _sort_in_place(items: Any, key: Any) -> None:
    ordered = sorted((_copy(x) for x in items), key=key)
    del items[:]
    items.extend(ordered)


def _copy(item: Message) -> Message:
    copy = type(item)()
    copy.CopyFrom(item)
    return copy


# --------------------------------------------------------------------------------------------
# Compatibility

# The rules, Confluent's Difference.Type names (protobuf/diff, Difference.java). Only
# incompatible ones are reported; the compatible ones (MESSAGE_ADDED, MESSAGE_MOVED, ENUM_*,
# FIELD_ADDED, FIELD_REMOVED, FIELD_NAME_CHANGED, FIELD_STRING_OR_BYTES_LABEL_CHANGED,
# ONEOF_ADDED, ONEOF_REMOVED, ONEOF_FIELD_ADDED, ONEOF_FIELD_MOVED_TO_TOP_LEVEL) are checked but
# pass. Confluent has no rule for syntax changes (proto2 <-> proto3), so neither has nerve.
_RULES = {
    "PACKAGE_CHANGED": "the package changed from {w!r} to {r!r}",
    "MESSAGE_REMOVED": "the writer's message {w} is missing from the reader",
    "FIELD_KIND_CHANGED": "field {n} changed kind from {w} to {r}",
    "FIELD_SCALAR_KIND_CHANGED": "field {n} changed type from {w} to {r}, which do not share "
    "an encoding",
    "FIELD_NAMED_TYPE_CHANGED": "field {n} changed type from {w} to {r}",
    "FIELD_NUMERIC_LABEL_CHANGED": "numeric field {n} changed from {w} to {r}: a repeated "
    "number may be written packed, which a singular field cannot read",
    "REQUIRED_FIELD_ADDED": "the reader requires field {n}, which the writer does not have",
    "REQUIRED_FIELD_REMOVED": "the writer's required field {n} is missing from the reader",
    "ONEOF_FIELD_REMOVED": "field {n} of oneof {o} is missing from the reader",
    "MULTIPLE_FIELDS_MOVED_TO_ONEOF": "oneof {o} holds fields {w} that were separate fields "
    "in the writer and could all be set",
    "FIELD_MOVED_TO_EXISTING_ONEOF": "oneof {o} takes in fields {w} that the writer kept apart "
    "(in another oneof or outside any), so old data may set more than one of them",
}


def _real_oneof(f: FieldProto) -> bool:
    return f.HasField("oneof_index") and not f.proto3_optional


class _Comparison:
    """One reader/writer comparison; Confluent calls the writer "original", the reader
    "update" (BACKWARD checks the new schema reading the old)."""

    def __init__(self, reader: _TypeIndex, writer: _TypeIndex, budget: Budget) -> None:
        self.reader = reader
        self.writer = writer
        self.budget = budget
        self.out: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, path: str, rule: str, **words: Any) -> None:
        self.out.append(Incompatibility(path, rule, _RULES[rule].format(**words)))

    def run(self) -> list[Incompatibility]:
        r_file, w_file = self.reader.main, self.writer.main
        if r_file.package != w_file.package:
            self.add(
                r_file.package or "<no package>",
                "PACKAGE_CHANGED",
                w=w_file.package,
                r=r_file.package,
            )
        self._types(w_file.message_type, r_file.message_type, w_file.package, r_file.package, "")
        return self.out

    def _types(
        self,
        w_msgs: Iterable[MessageProto],
        r_msgs: Iterable[MessageProto],
        w_scope: str,
        r_scope: str,
        path: str,
    ) -> None:
        """Messages matched by name, level by level (enum changes are all compatible)."""
        readers = {m.name: m for m in r_msgs}
        for w_msg in w_msgs:
            if w_msg.options.map_entry:
                continue  # compared through the map field that uses it
            name = _join(path, w_msg.name)
            r_msg = readers.get(w_msg.name)
            if r_msg is None:
                self.add(name, "MESSAGE_REMOVED", w=name)
                continue
            w_full, r_full = _join(w_scope, w_msg.name), _join(r_scope, r_msg.name)
            self._message(w_msg, r_msg, w_full, r_full, name)
            self._types(w_msg.nested_type, r_msg.nested_type, w_full, r_full, name)

    def _message(
        self, w: MessageProto, r: MessageProto, w_full: str, r_full: str, path: str
    ) -> None:
        """Confluent's MessageSchemaDiff as of DGS-24604 (schema-registry commit 3f5ff24,
        June 2026, in the 8.3.2 and 8.4.0 builds): fields are compared by number across the
        whole message whatever oneof holds them, so renaming, removing or merging oneofs can no
        longer hide a removal or a type change; a reader oneof whose members come from more
        than one writer group (a oneof, or a single field outside any) is refused."""
        if (w_full, r_full) in self._seen:
            return  # recursive types: each pair once
        self._seen.add((w_full, r_full))
        self.budget.spend(1 + len(w.field) + len(r.field))
        w_by_number = {f.number: f for f in w.field}
        r_by_number = {f.number: f for f in r.field}
        w_oneof = {f.number: w.oneof_decl[f.oneof_index].name for f in w.field if _real_oneof(f)}
        r_oneof = {f.number: r.oneof_decl[f.oneof_index].name for f in r.field if _real_oneof(f)}

        # A writer oneof gone by name with none of its members left anywhere is deleted whole:
        # compatible. If some members live on elsewhere, the missing ones are removals.
        r_oneof_names = {d.name for d in r.oneof_decl}
        deleted_whole = {
            name
            for name in set(w_oneof.values())
            if name not in r_oneof_names
            and not any(n in r_by_number for n, o in w_oneof.items() if o == name)
        }

        # Each reader oneof must gather members from one writer group at most: fields that
        # could all be set together before (separate fields, or members of different oneofs)
        # would otherwise arrive at once in old data.
        for idx, decl in enumerate(r.oneof_decl):
            members = [f for f in r.field if _real_oneof(f) and f.oneof_index == idx]
            groups = set()
            from_top: list[FieldProto] = []
            for f in members:
                if f.number in w_oneof:
                    groups.add(("oneof", w_oneof[f.number]))
                elif f.number in w_by_number:
                    groups.add(("field", str(f.number)))
                    from_top.append(f)
            if len(groups) < 2:
                continue
            where = f"{path}.{decl.name}"
            moved = [f for f in members if f.number in w_by_number]
            names = ", ".join(f.name for f in moved)
            if len(from_top) > 1:
                self.add(where, "MULTIPLE_FIELDS_MOVED_TO_ONEOF", o=decl.name, w=names)
            else:
                self.add(where, "FIELD_MOVED_TO_EXISTING_ONEOF", o=decl.name, w=names)

        for number in sorted(set(w_by_number) | set(r_by_number)):
            wf, rf = w_by_number.get(number), r_by_number.get(number)
            if rf is None and wf is not None:
                if number in w_oneof:
                    if w_oneof[number] not in deleted_whole:
                        self.add(
                            f"{path}.{wf.name}", "ONEOF_FIELD_REMOVED", n=wf.name, o=w_oneof[number]
                        )
                elif wf.label == FieldProto.LABEL_REQUIRED:
                    self.add(f"{path}.{wf.name}", "REQUIRED_FIELD_REMOVED", n=wf.name)
            elif wf is None and rf is not None:
                if number not in r_oneof and rf.label == FieldProto.LABEL_REQUIRED:
                    self.add(f"{path}.{rf.name}", "REQUIRED_FIELD_ADDED", n=rf.name)
            elif wf is not None and rf is not None:
                # A renamed field (FIELD_NAME_CHANGED) is compatible: the wire knows numbers.
                self._labels(wf, rf, w_full, r_full, f"{path}.{rf.name}")
                self._types_of(wf, rf, f"{path}.{rf.name}", rf.name)

    def _labels(self, wf: FieldProto, rf: FieldProto, w_full: str, r_full: str, path: str) -> None:
        """FIELD_NUMERIC_LABEL_CHANGED: a scalar that is a number (enums included) changed
        between singular, required and repeated, where both sides say so: Confluent compares
        the labels of its parsed .proto (Wire), which has none for proto3's plain fields and for
        oneof members. Strings and bytes may change label (FIELD_STRING_OR_BYTES_LABEL_CHANGED,
        compatible); messages and maps are not compared by label."""
        w_label = self._label(wf, self.writer.syntax_of(w_full))
        r_label = self._label(rf, self.reader.syntax_of(r_full))
        if w_label is None or r_label is None or w_label == r_label:
            return
        if self._kind(wf, self.writer)[0] != "scalar" or self._kind(rf, self.reader)[0] != "scalar":
            return
        group = _SCALAR_GROUPS[wf.type]
        if group != _SCALAR_GROUPS[rf.type] or group == "length-delimited":
            return
        self.add(path, "FIELD_NUMERIC_LABEL_CHANGED", n=rf.name, w=w_label, r=r_label)

    @staticmethod
    def _label(f: FieldProto, syntax: str) -> str | None:
        """The label Confluent sees (ProtobufSchema.label): none in a oneof or for a proto3
        field without one, else optional, required or repeated."""
        if _real_oneof(f):
            return None
        if f.proto3_optional:
            return "optional"
        if f.label == FieldProto.LABEL_REPEATED:
            return "repeated"
        if syntax == "proto3":
            return None
        return "required" if f.label == FieldProto.LABEL_REQUIRED else "optional"

    def _kind(self, f: FieldProto, index: _TypeIndex) -> tuple[str, MessageProto | None]:
        if f.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP):
            info = index.get(f.type_name)
            if info is not None and info.is_map_entry and f.label == FieldProto.LABEL_REPEATED:
                return "map", info.message
            return "message", None
        return "scalar", None

    def _types_of(self, wf: FieldProto, rf: FieldProto, path: str, name: str) -> None:
        w_kind, w_entry = self._kind(wf, self.writer)
        r_kind, r_entry = self._kind(rf, self.reader)
        if w_kind != r_kind:
            self.add(path, "FIELD_KIND_CHANGED", n=name, w=w_kind, r=r_kind)
        elif w_kind == "scalar":
            if _SCALAR_GROUPS[wf.type] != _SCALAR_GROUPS[rf.type]:
                self.add(
                    path,
                    "FIELD_SCALAR_KIND_CHANGED",
                    n=name,
                    w=self._type_word(wf, self.writer),
                    r=self._type_word(rf, self.reader),
                )
        elif w_kind == "map" and w_entry is not None and r_entry is not None:
            w_kv = {f.number: f for f in w_entry.field}
            r_kv = {f.number: f for f in r_entry.field}
            for num, part in ((1, "key"), (2, "value")):
                if num in w_kv and num in r_kv:
                    self._types_of(w_kv[num], r_kv[num], f"{path}.{part}", f"{name} ({part})")
        elif w_kind == "message":
            self._named_types(wf, rf, path, name)

    @staticmethod
    def _type_word(f: FieldProto, index: _TypeIndex) -> str:
        if f.type in _SCALAR_NAMES:
            return _SCALAR_NAMES[f.type]
        info = index.get(f.type_name)
        return f"enum {info.local_name}" if info is not None else f.type_name.lstrip(".")

    def _named_types(self, wf: FieldProto, rf: FieldProto, path: str, name: str) -> None:
        w_info, r_info = self.writer.get(wf.type_name), self.reader.get(rf.type_name)
        if w_info is None or r_info is None:
            if wf.type_name != rf.type_name:
                self.add(path, "FIELD_NAMED_TYPE_CHANGED", n=name, w=wf.type_name, r=rf.type_name)
            return
        # Names compare without their package: a package change is PACKAGE_CHANGED's business.
        if w_info.local_name != r_info.local_name:
            self.add(
                path, "FIELD_NAMED_TYPE_CHANGED", n=name, w=w_info.local_name, r=r_info.local_name
            )
            return
        # Types declared in the schema itself are compared message by message anyway; an
        # imported type is compared here, unless both sides import the very same file.
        if (w_info.in_main and r_info.in_main) or w_info.file_key == r_info.file_key:
            return
        if w_info.message is None or r_info.message is None:
            return
        before = len(self.out)
        self._message(
            w_info.message, r_info.message, w_info.full_name, r_info.full_name, r_info.local_name
        )
        if len(self.out) > before:
            self.add(
                path, "FIELD_NAMED_TYPE_CHANGED", n=name, w=w_info.local_name, r=r_info.local_name
            )
