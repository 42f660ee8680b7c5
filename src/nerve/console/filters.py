"""The filter language of the message browser: small expressions over a record, in CEL's
spirit and mostly its syntax, evaluated on the server.

    value.amount > 100 && key == "acct-7"
    headers.ce_type == "finance.transaction.recorded" || value.email.endsWith("@example.com")
    partition == 2 && !(value.status in ["ok", "done"])

Names: ``key``, ``value`` (decoded: Avro, JSON Schema and Protobuf through the registry, else
JSON, else text), ``headers`` (name to text), ``ce`` (CloudEvents attributes: ``ce.type``,
``ce.correlationid``), ``topic``, ``partition``, ``offset``, ``timestamp`` (ms). Operators:
``== != < <= > >= in``, ``&& || !`` (or ``and or not``), ``+ - * / %``; ``true false null``.
Functions, called as methods: ``contains startsWith endsWith matches lower upper size``, and
``int() double() string()``. A missing field is ``null``; a comparison that cannot be made (a
number against text) is false for that record, never an error of the whole scan.

Expressions are parsed by Python's own parser into an AST that is checked node by node: only
what is listed above is accepted, so an expression cannot reach anything else. The checked
tree is compiled once, then runs per record at the speed of a Python expression; the scan
decodes only what the expression names (a key filter never decodes values).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NAMES = ("key", "value", "headers", "ce", "topic", "partition", "offset", "timestamp")
_CONSTANTS = {"true": True, "false": False, "null": None}
_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


class FilterError(ValueError):
    """An expression the language does not accept; the message says where and why."""


def _field(obj: Any, name: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    if isinstance(obj, (list, tuple, str)) and isinstance(name, int):
        return obj[name] if -len(obj) <= name < len(obj) else None
    return None


def _matches(text: Any, pattern: Any) -> bool:
    return isinstance(text, str) and re.search(str(pattern), text) is not None


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, (list, dict, tuple)):
        return item in container
    return False


def _starts(text: Any, prefix: Any) -> bool:
    return isinstance(text, str) and isinstance(prefix, str) and text.startswith(prefix)


def _ends(text: Any, suffix: Any) -> bool:
    return isinstance(text, str) and isinstance(suffix, str) and text.endswith(suffix)


def _lower(text: Any) -> Any:
    return text.lower() if isinstance(text, str) else None


def _upper(text: Any) -> Any:
    return text.upper() if isinstance(text, str) else None


def _size(value: Any) -> Any:
    return len(value) if isinstance(value, (str, list, dict, bytes)) else None


def _int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _double(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _string(value: Any) -> Any:
    return None if value is None else str(value)


_METHODS: dict[str, Callable[..., Any]] = {
    "contains": _contains,
    "startsWith": _starts,
    "endsWith": _ends,
    "matches": _matches,
    "lower": _lower,
    "upper": _upper,
    "size": _size,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": _int,
    "double": _double,
    "string": _string,
    "size": _size,
}
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.List,
    ast.Tuple,
)


def _to_python(text: str) -> str:
    """CEL's ``&& || !`` as Python's ``and or not``, outside string literals."""
    parts = _STRING.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside strings
        part = parts[i].replace("&&", " and ").replace("||", " or ")
        parts[i] = re.sub(r"!(?!=)", " not ", part)
    return "".join(parts)


class _Rewrite(ast.NodeTransformer):
    """Checks every node and turns field access and method calls into safe helper calls."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, _ALLOWED):
            raise FilterError(f"{type(node).__name__} is not part of the filter language")
        return super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _CONSTANTS:
            return ast.copy_location(ast.Constant(_CONSTANTS[node.id]), node)
        if node.id not in NAMES:
            raise FilterError(f"unknown name {node.id!r}: use {', '.join(NAMES)}")
        self.names.add(node.id)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not isinstance(node.value, (str, int, float, bool, type(None))):
            raise FilterError(f"{node.value!r} is not a value of the filter language")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        target = self.visit(node.value)
        return _call("_field", [target, ast.Constant(node.attr)], node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.slice, ast.Slice):
            raise FilterError("slices are not part of the filter language")
        target = self.visit(node.value)
        index = self.visit(node.slice)
        return _call("_field", [target, index], node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if node.keywords:
            raise FilterError("functions take no keyword arguments")
        args = [self.visit(a) for a in node.args]
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method not in _METHODS:
                raise FilterError(f"unknown method {method}(): use {', '.join(_METHODS)}")
            return _call(f"_m_{method}", [self.visit(node.func.value), *args], node)
        if isinstance(node.func, ast.Name):
            if node.func.id in _FUNCTIONS:
                return _call(f"_f_{node.func.id}", args, node)
            raise FilterError(f"unknown function {node.func.id}(): use {', '.join(_FUNCTIONS)}")
        self.visit(node.func)  # a lambda, a subscript...: refused by what it is
        raise FilterError("only named functions and methods can be called")


def _call(name: str, args: list[ast.expr], where: ast.AST) -> ast.AST:
    return ast.copy_location(ast.Call(ast.Name(name, ast.Load()), args, []), where)


GLOBALS: dict[str, Any] = {
    "__builtins__": {},
    "_field": _field,
    **{f"_m_{n}": f for n, f in _METHODS.items()},
    **{f"_f_{n}": f for n, f in _FUNCTIONS.items()},
}


@dataclass(frozen=True)
class Filter:
    """A compiled expression: ``matches(fields)`` is True, False, or raises for a record
    whose fields do not compare (the scan counts those as not matching)."""

    text: str
    names: frozenset[str]
    code: Any  # evaluate with eval(code, GLOBALS, fields)
    # JSON texts a JSON value must contain to match: the string literals the expression
    # requires a value field to equal (in a top-level && chain). A JSON value without them,
    # and without a backslash (an escape could spell the string otherwise), cannot match, so
    # the scan skips decoding it.
    needles: tuple[bytes, ...] = ()

    def matches(self, fields: dict[str, Any]) -> bool:
        return bool(eval(self.code, GLOBALS, fields))  # checked AST, no builtins

    @property
    def needs_value(self) -> bool:
        return "value" in self.names

    @property
    def needs_headers(self) -> bool:
        return "headers" in self.names or "ce" in self.names


def compile_filter(text: str) -> Filter:
    text = text.strip()
    if not text:
        raise FilterError("an empty filter")
    if len(text) > 2000:
        raise FilterError("a filter of at most 2,000 characters")
    try:
        tree = ast.parse(_to_python(text).strip(), mode="eval")
    except SyntaxError as exc:
        raise FilterError(f"not an expression: {exc.msg} at column {exc.offset}") from None
    needles = _needles(tree.body)
    rewrite = _Rewrite()
    checked = ast.fix_missing_locations(rewrite.visit(tree))
    code = compile(checked, "<filter>", "eval")
    return Filter(text, frozenset(rewrite.names), code, needles)


def _is_value_field(node: ast.expr) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "value"


def _needles(node: ast.expr) -> tuple[bytes, ...]:
    """The ``value.path == "literal"`` conjuncts' literals as JSON text (see Filter.needles)."""
    import json

    parts = node.values if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) else [node]
    found = []
    for part in parts:
        if not (isinstance(part, ast.Compare) and len(part.ops) == 1):
            continue
        if not isinstance(part.ops[0], ast.Eq):
            continue
        left, right = part.left, part.comparators[0]
        for field, literal in ((left, right), (right, left)):
            if (
                _is_value_field(field)
                and not isinstance(field, ast.Name)  # value itself may be plain text
                and isinstance(literal, ast.Constant)
                and isinstance(literal.value, str)
            ):
                found.append(json.dumps(literal.value, ensure_ascii=False).encode())
    return tuple(found)
