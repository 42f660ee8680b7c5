"""Custom options a ``.proto`` file uses without defining them, kept as Confluent keeps them.

Confluent parses ``.proto`` text with Square's Wire parser, which reads an option such as
``option (acme.audited) = true;`` or ``[(acme.pii) = true]`` without resolving its name: the
schema registers, its stored text keeps the option, and the descriptor Confluent builds from it
(``format=serialized``) leaves it out, knowing nothing of its type (ProtobufSchema's dynamic
schema only carries options it knows). protoc, which nerve compiles with, refuses such a file
instead ("Option ... unknown"). So when protoc refuses a file for that reason alone, the
offending options are blanked out of the text (spaces, so every position stays put), the file is
compiled again with source positions, and each option is attached to the element that held it,
to be printed back there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2

from nerve.registry.schema_types import InvalidSchema

# protoc: 'schema.proto:5:10: Option "(acme.audited)" unknown. Ensure that ...'
_UNKNOWN = re.compile(r'^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): Option "\(.*\)" unknown\.')
_VALUE_TOKEN = re.compile(r"[-+]?[A-Za-z0-9_.]+")


@dataclass(frozen=True, slots=True)
class ForeignOption:
    """One option the file does not define: where it sat and how it was written."""

    line: int  # 0-based, as in source code info
    col: int
    inline: bool  # in a field's or enum value's [...] rather than an option statement
    text: str  # "(acme.audited) = true", whitespace as written inside the value


# Where printed options belong: ("file",), ("message", name), ("field", message, number),
# ("oneof", message, oneof), ("enum", name), ("value", enum, value name), ("service", name),
# ("method", service, method name). Names are full names without the leading dot.
Key = tuple[Any, ...]


def unknown_option_errors(stderr_lines: Iterable[str]) -> dict[str, list[tuple[int, int]]] | None:
    """The (line, column) of each unknown-option error by file (1-based, as protoc prints),
    or None when protoc also reported anything else."""
    found: dict[str, list[tuple[int, int]]] = {}
    for line in stderr_lines:
        match = _UNKNOWN.match(line)
        if match is None:
            return None
        found.setdefault(match["file"], []).append((int(match["line"]), int(match["col"])))
    return found or None


def blank_out(text: str, positions: Iterable[tuple[int, int]]) -> tuple[str, list[ForeignOption]]:
    """``text`` with the options at ``positions`` (the ``(`` of each name) replaced by spaces,
    and the options taken out."""
    starts = _line_starts(text)
    chars = list(text)
    if not starts:
        return text, []
    taken: list[ForeignOption] = []
    for line, col in sorted(set(positions)):
        text = "".join(chars)  # as blanked so far: positions never move
        offset = starts[line - 1] + col - 1
        if not 0 <= offset < len(text) or text[offset] != "(":
            raise InvalidSchema(f"option at {line}:{col} could not be read")
        name_end = _skip_name(text, offset)
        value_end = _skip_value(text, _expect(text, _skip_space(text, name_end), "="))
        written = re.sub(r"\s+", " ", text[offset:value_end]).strip()
        keyword = _statement_start(text, offset)
        if keyword is not None:  # option (x) = v;
            end = _expect(text, _skip_space(text, value_end), ";")
            _blank(chars, keyword, end)
            taken.append(ForeignOption(line - 1, col - 1, False, written))
            continue
        # In a [...] list: blank the option with one comma beside it, or the whole list.
        open_at = _list_start(text, offset)
        after = _skip_space(text, value_end)
        before = _skip_space_back(text, offset)
        if text[after] == ",":
            _blank(chars, offset, after + 1)
        elif text[before] == ",":
            _blank(chars, before, value_end)
        elif text[before] == "[" and text[after] == "]":
            _blank(chars, open_at, after + 1)
        else:
            raise InvalidSchema(f"option at {line}:{col} could not be read")
        taken.append(ForeignOption(line - 1, col - 1, True, written))
    return "".join(chars), taken


def attach(
    fdp: descriptor_pb2.FileDescriptorProto, options: list[ForeignOption]
) -> dict[Key, tuple[ForeignOption, ...]]:
    """Each option under the key of the innermost element whose source span holds it (the
    file when none does); ``fdp`` must carry source code info."""
    spans = [(tuple(loc.path), _span(loc.span)) for loc in fdp.source_code_info.location]
    elements = [(path, span) for path, span in spans if _element_key(fdp, path) is not None]
    out: dict[Key, list[ForeignOption]] = {}
    for option in options:
        best: tuple[int, ...] = ()
        for path, (start, end) in elements:
            if start <= (option.line, option.col) < end and len(path) > len(best):
                best = path
        key = _element_key(fdp, best) if best else ("file",)
        assert key is not None
        out.setdefault(key, []).append(option)
    return {key: tuple(found) for key, found in out.items()}


# -- scanning ------------------------------------------------------------------------------


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for match in re.finditer("\n", text):
        starts.append(match.end())
    return starts


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _skip_space_back(text: str, i: int) -> int:
    i -= 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i


def _expect(text: str, i: int, char: str) -> int:
    if i >= len(text) or text[i] != char:
        raise InvalidSchema(f"expected {char!r} at offset {i} in an option")
    return i + 1


def _skip_name(text: str, i: int) -> int:
    """Past ``(a.b)`` and any ``.c`` or ``.(d.e)`` that follows it."""
    while True:
        if text[i] == "(":
            i = text.index(")", i) + 1
        else:
            match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, i)
            if match is None:
                raise InvalidSchema(f"an option name at offset {i} could not be read")
            i = match.end()
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return i


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _skip_value(text: str, i: int) -> int:
    i = _skip_space(text, i)
    if i < len(text) and text[i] == "{":
        depth = 0
        while i < len(text):
            if text[i] in "\"'":
                i = _skip_string(text, i)
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
            if depth == 0:
                return i
        raise InvalidSchema("an option's { ... } value is not closed")
    if i < len(text) and text[i] in "\"'":
        end = _skip_string(text, i)
        while True:  # adjacent literals are one string
            nxt = _skip_space(text, end)
            if nxt < len(text) and text[nxt] in "\"'":
                end = _skip_string(text, nxt)
            else:
                return end
    match = _VALUE_TOKEN.match(text, i)
    if match is None:
        raise InvalidSchema(f"an option value at offset {i} could not be read")
    return match.end()


def _statement_start(text: str, i: int) -> int | None:
    """The offset of ``option`` when the option at ``i`` is an option statement."""
    j = _skip_space_back(text, i)
    if j >= 5 and text[j - 5 : j + 1] == "option" and (j < 6 or not text[j - 6].isalnum()):
        return j - 5
    return None


def _list_start(text: str, i: int) -> int:
    depth = 0
    while i >= 0:
        if text[i] == "]":
            depth += 1
        elif text[i] == "[":
            if depth == 0:
                return i
            depth -= 1
        i -= 1
    raise InvalidSchema("an inline option is not inside [ ... ]")


def _blank(chars: list[str], start: int, end: int) -> None:
    for k in range(start, end):
        if chars[k] != "\n":
            chars[k] = " "


# -- elements ------------------------------------------------------------------------------


def _span(span: Iterable[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    values = list(span)
    if len(values) == 3:
        return (values[0], values[1]), (values[0], values[2])
    return (values[0], values[1]), (values[2], values[3])


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _element_key(fdp: descriptor_pb2.FileDescriptorProto, path: tuple[int, ...]) -> Key | None:
    """The printer's key for the element at a source-info path, or None for other paths."""
    if len(path) < 2:
        return None
    kind, index, rest = path[0], path[1], path[2:]
    if kind == 4 and index < len(fdp.message_type):
        return _in_message(fdp.message_type[index], fdp.package, rest)
    if kind == 5 and index < len(fdp.enum_type):
        return _in_enum(fdp.enum_type[index], fdp.package, rest)
    if kind == 6 and index < len(fdp.service):
        service = fdp.service[index]
        name = _join(fdp.package, service.name)
        if not rest:
            return ("service", name)
        if len(rest) == 2 and rest[0] == 2 and rest[1] < len(service.method):
            return ("method", name, service.method[rest[1]].name)
    return None


def _in_message(
    msg: descriptor_pb2.DescriptorProto, scope: str, rest: tuple[int, ...]
) -> Key | None:
    name = _join(scope, msg.name)
    if not rest:
        return ("message", name)
    if len(rest) < 2:
        return None
    kind, index, more = rest[0], rest[1], rest[2:]
    if kind == 2 and index < len(msg.field) and not more:
        return ("field", name, msg.field[index].number)
    if kind == 8 and index < len(msg.oneof_decl) and not more:
        return ("oneof", name, msg.oneof_decl[index].name)
    if kind == 3 and index < len(msg.nested_type):
        return _in_message(msg.nested_type[index], name, more)
    if kind == 4 and index < len(msg.enum_type):
        return _in_enum(msg.enum_type[index], name, more)
    return None


def _in_enum(
    enum: descriptor_pb2.EnumDescriptorProto, scope: str, rest: tuple[int, ...]
) -> Key | None:
    name = _join(scope, enum.name)
    if not rest:
        return ("enum", name)
    if len(rest) == 2 and rest[0] == 2 and rest[1] < len(enum.value):
        return ("value", name, enum.value[rest[1]].name)
    return None
