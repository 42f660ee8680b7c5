"""The registry's settings: one typed object, set by name (``NAME=VALUE``) like the broker's.

Names that Confluent Schema Registry also has keep Confluent's name and default; the limits
that protect an instance from hostile or broken input are nerve's own (Confluent bounds request
size and nesting through Jetty and Jackson instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MIB = 1024 * 1024


class RegistryConfigError(ValueError):
    """A setting that does not exist or whose value does not parse."""


@dataclass
class RegistryConfig:
    # A request body larger than this is refused with 413 before it is read in full.
    max_request_bytes: int = 10 * MIB
    # How deeply a schema document may nest (JSON objects and arrays). Jackson, which reads
    # schemas for Confluent, refuses documents deeper than 1000 (StreamReadConstraints).
    max_schema_depth: int = 1000
    # Steps one compatibility check or parse may take (types compared, fields and branches
    # walked); beyond it the request is refused rather than keeping a worker busy.
    max_check_steps: int = 2_000_000
    # Confluent's schema.search.default.limit and schema.search.max.limit: GET /schemas
    # answers at most this many unless a smaller limit is asked for.
    schema_search_default_limit: int = 1000
    schema_search_max_limit: int = 1000

    _NAMES = {
        "max.request.bytes": "max_request_bytes",
        "max.schema.depth": "max_schema_depth",
        "max.check.steps": "max_check_steps",
        "schema.search.default.limit": "schema_search_default_limit",
        "schema.search.max.limit": "schema_search_max_limit",
    }

    def apply_pairs(self, pairs: list[str]) -> None:
        """``["name=value", ...]`` as given on the command line (``--config``)."""
        settings: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                raise RegistryConfigError(f"expected NAME=VALUE, got {pair!r}")
            settings[name.strip()] = value.strip()
        self.apply(settings)

    def apply(self, settings: Mapping[str, str]) -> None:
        """Set each ``name: value``; raises :class:`RegistryConfigError` naming a bad one."""
        known = {f.name for f in fields(self)}
        for name, value in settings.items():
            attr = self._NAMES.get(name)
            if attr is None or attr not in known:
                raise RegistryConfigError(f"unknown registry setting {name!r}")
            try:
                number = int(value)
            except ValueError:
                raise RegistryConfigError(f"{name} must be an integer, not {value!r}") from None
            if number < 1:
                raise RegistryConfigError(f"{name} must be at least 1, not {number}")
            setattr(self, attr, number)
