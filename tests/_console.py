"""``nerve console`` as a real subprocess, for tests: the life cycle of a broker subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

from tests._broker import BrokerProcess


class ConsoleProcess(BrokerProcess):
    def __init__(self, root: Path, bootstrap: str, registry: str, *extra: str) -> None:
        super().__init__(root)
        self.kafka_bootstrap, self.registry_url, self.extra = bootstrap, registry, extra

    def command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "nerve", "console", "-b", self.kafka_bootstrap,
            "-r", self.registry_url, "--port", str(port), *self.extra,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://{self.bootstrap}"
