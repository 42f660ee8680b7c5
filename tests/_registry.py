"""``nerve registry`` as a real subprocess against a real broker, for tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tests._broker import BrokerProcess


class RegistryProcess(BrokerProcess):
    """``python -m nerve registry``: the same life cycle as a broker subprocess, with
    ``data_dir`` holding only its stderr log."""

    def __init__(
        self,
        root: Path,
        bootstrap: str,
        topic: str = "_schemas",
        settings: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        super().__init__(root, args=args or ())
        self.kafka_bootstrap = bootstrap
        self.topic = topic
        self.settings = settings or {}

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "nerve",
            "registry",
            "--bootstrap-servers",
            self.kafka_bootstrap,
            "--listen",
            f"{self.host}:{port}",
            "--topic",
            self.topic,
            *(f"--config={name}={value}" for name, value in self.settings.items()),
            *self.args,
        ]

    @property
    def url(self) -> str:
        return f"http://{self.bootstrap}"


RegistryFactory = Callable[..., RegistryProcess]
