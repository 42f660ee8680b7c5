"""Scraping a Prometheus endpoint over HTTP, as Prometheus does, for tests."""

from __future__ import annotations

import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests._broker import BrokerProcess


class Scrape:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str | int) -> float:
        """The sample with exactly these labels; AssertionError naming the near ones if absent."""
        key = (name, frozenset((k, str(v)) for k, v in labels.items()))
        if key not in self.samples:
            near = [dict(lbl) for n, lbl in self.samples if n == name][:20]
            raise AssertionError(f"no sample {name}{labels}; with that name: {near}")
        return self.samples[key]

    def get(self, name: str, default: float = 0.0, **labels: str | int) -> float:
        key = (name, frozenset((k, str(v)) for k, v in labels.items()))
        return self.samples.get(key, default)

    def total(self, name: str, **labels: str | int) -> float:
        """The sum over every sample of ``name`` whose labels include ``labels``."""
        wanted = {(k, str(v)) for k, v in labels.items()}
        return sum(v for (n, lbl), v in self.samples.items() if n == name and wanted <= lbl)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(response.read().decode())


class NerveUp(BrokerProcess):
    """``nerve up`` with every port picked free (pass ``--metrics-port 0`` in ``args``)."""

    def command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "nerve", "up", "--data-dir", str(self.data_dir),
            "--listen", f"{self.host}:{port}", "--registry-listen", "127.0.0.1:0",
            "--console-listen", "127.0.0.1:0", *self.args,
        ]  # fmt: skip

    @property
    def registry_url(self) -> str:
        return self.stdout_line("schema registry listening on ").rsplit(" ", 1)[1]
