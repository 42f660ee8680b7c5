"""The one part of a JAAS configuration a broker reads from ``sasl.jaas.config``: a login
module's options, such as PLAIN's ``user_alice="alice-secret"`` users, so the broker takes
the same setting a Kafka broker does (``listener.name.sasl_plaintext.plain.sasl.jaas.config``):

    org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";
"""

from __future__ import annotations

import re

_OPTION = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')
_HEAD = re.compile(r"\s*([A-Za-z0-9_.$]+)\s+(required|requisite|sufficient|optional)\b")


class JaasError(ValueError):
    pass


def parse_options(text: str) -> dict[str, str]:
    """The options of the (single) login module in ``text``."""
    head = _HEAD.match(text)
    if head is None:
        raise JaasError(
            "sasl.jaas.config must start with a login module and a control flag "
            "(org.apache.kafka.common.security.plain.PlainLoginModule required ...;)"
        )
    pos = head.end()
    options: dict[str, str] = {}
    while True:
        match = _OPTION.match(text, pos)
        if match is None:
            break
        quoted = match.group(2)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        options[match.group(1)] = value
        pos = match.end()
    if text[pos:].strip() not in (";", ""):
        raise JaasError(f"sasl.jaas.config: cannot read {text[pos:].strip()[:40]!r}")
    return options


def plain_users(options: dict[str, str]) -> dict[str, str]:
    return {k[len("user_") :]: v for k, v in options.items() if k.startswith("user_")}
