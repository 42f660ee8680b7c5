"""Kafka's principal: a type and a name, written ``User:alice``, as ACLs and super.users name it."""

from __future__ import annotations

from typing import NamedTuple


class KafkaPrincipal(NamedTuple):
    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """``User:alice`` into its parts; raises ValueError without a type."""
        kind, sep, name = text.strip().partition(":")
        if not sep or not kind:
            raise ValueError(f"a principal is TYPE:NAME (User:alice), not {text!r}")
        return cls(kind, name)


# Who a client is before (or without) authentication, as Kafka names it.
ANONYMOUS = KafkaPrincipal("User", "ANONYMOUS")
# The principal an ACL names to mean everyone.
WILDCARD_PRINCIPAL = KafkaPrincipal("User", "*")
