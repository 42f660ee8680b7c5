"""The librdkafka settings every client nerve makes is given, from the environment: a service,
``nerve run``, the ``nerve`` commands, the registry and the console all connect the same way,
so one set of settings (``security.protocol``, ``sasl.*``, ``ssl.*``) reaches all of them.

Two sources, read in this order (a later one wins):

- ``NERVE_CLIENT_PROPERTIES``: a properties file of librdkafka settings (``name=value`` lines,
  ``#`` comments), the form kcat's ``-F`` and Kafka's ``--command-config`` read;
  ``nerve up --secure`` writes one for its admin.
- ``NERVE_KAFKA_<NAME>``: one setting each, named as Confluent's images name Kafka settings
  in the environment: upper case, ``.`` written ``_``, ``_`` written ``__``, ``-`` written
  ``___`` (``NERVE_KAFKA_SASL_USERNAME`` is ``sasl.username``).

Command lines add ``-F FILE`` and ``-X NAME=VALUE`` after these.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROPERTIES_VARIABLE = "NERVE_CLIENT_PROPERTIES"
PREFIX = "NERVE_KAFKA_"


class ClientSettingsError(ValueError):
    """A properties file that cannot be read, or a line that is not NAME=VALUE."""


def setting_name(variable: str) -> str:
    """``NERVE_KAFKA_SASL_USERNAME`` -> ``sasl.username`` (``___`` is ``-``, ``__`` is ``_``)."""
    body = variable[len(PREFIX) :].lower()
    return (
        body.replace("___", "\0").replace("__", "\1").replace("_", ".").translate({0: "-", 1: "_"})
    )


def read_properties(path: str | Path) -> dict[str, str]:
    """A properties file's settings; ClientSettingsError names the file and the bad line."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ClientSettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    settings: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ClientSettingsError(f"{path}:{number}: expected NAME=VALUE, got {line!r}")
        settings[name.strip()] = value.strip()
    return settings


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the environment gives: the properties file's, then NERVE_KAFKA_*."""
    env = os.environ if environ is None else environ
    settings: dict[str, str] = {}
    path = env.get(PROPERTIES_VARIABLE)
    if path:
        settings.update(read_properties(path))
    for variable in sorted(env):
        if variable.startswith(PREFIX) and len(variable) > len(PREFIX):
            settings[setting_name(variable)] = env[variable]
    return settings


def write_properties(path: Path, settings: Mapping[str, object], header: str = "") -> None:
    """Settings as a properties file readable by its owner only (it may hold a password)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{name}={value}" for name, value in settings.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


class RefusalTrap:
    """An ``error_cb`` that keeps why the broker refused a client: librdkafka tells a wrong
    password or a failed TLS handshake only to the error callback, while the call that failed
    (``list_topics``) says "Broker transport failure", which sends a user looking for a
    network problem. ``why(fallback)`` is the refusal if there was one."""

    def __init__(self) -> None:
        self.refusal: str | None = None

    def __call__(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            self.refusal = error.str()

    def why(self, client: Any, fallback: str) -> str:
        client.poll(0)  # the error callbacks are served here
        return self.refusal or fallback


def without_userinfo(url: str | None) -> str | None:
    """``url`` without a ``user:password@`` (registry URLs may carry credentials, which are
    not to be shown or written where others read)."""
    if not url or "@" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
