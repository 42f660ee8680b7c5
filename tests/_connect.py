"""Run Kafka Connect 4.4 workers (distributed mode) for tests and benchmarks, from the jars
``scripts/connect fetch`` resolved from Maven Central, with the Debezium plugins of
``scripts/connect debezium`` on the plugin path.

``ConnectWorker`` starts ``org.apache.kafka.connect.cli.ConnectDistributed`` against any
bootstrap (nerve or Apache Kafka) and waits until its REST API answers and the worker has
joined its group; ``kill()`` is SIGKILL, ``start()`` again reuses the same group, topics and port,
so a killed worker comes back as the same member of the cluster.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300.0  # a JVM scanning its plugins on a loaded machine
STOP_TIMEOUT_S = 30.0
HEAP = ["-Xmx512M", "-Xms256M"]


class ConnectError(RuntimeError):
    pass


def _script(mode: str) -> Path:
    out = subprocess.run(
        [str(REPO / "scripts" / "connect"), mode], capture_output=True, text=True, timeout=1800
    )
    if out.returncode != 0:
        raise ConnectError(f"scripts/connect {mode} failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def connect_home() -> Path:
    """The cache folder with ``libs/`` and ``log4j2.properties`` (fetched on first use)."""
    return _script("fetch")


def debezium_plugins() -> Path:
    """The folder of Debezium plugin folders, for ``plugin.path`` (fetched on first use)."""
    return _script("debezium") / "plugins"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConnectWorker:
    """One Connect worker process of the cluster named ``group``."""

    def __init__(
        self,
        work_dir: Path,
        bootstrap: str,
        *,
        group: str = "connect-cluster",
        configs: Mapping[str, str | int] | None = None,
        plugin_path: Path | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap = bootstrap
        self.group = group
        self.configs = {k: str(v) for k, v in (configs or {}).items()}
        self.plugin_path = plugin_path
        self.port = 0
        self.log_path = self.work_dir / "connect.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.home: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _properties(self) -> str:
        settings = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "config.storage.topic": f"{self.group}-configs",
            "offset.storage.topic": f"{self.group}-offsets",
            "status.storage.topic": f"{self.group}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "offset.flush.interval.ms": "1000",
            "exactly.once.source.support": "enabled",
            "scheduled.rebalance.max.delay.ms": "0",
            **({"plugin.path": str(self.plugin_path)} if self.plugin_path else {}),
            **self.configs,
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def start(self) -> ConnectWorker:
        self.home = self.home or connect_home()
        if not self.port:
            self.port = _free_port()
        config = self.work_dir / "worker.properties"
        config.write_text(self._properties())
        java = shutil.which("java")
        if java is None:
            raise ConnectError("java is not installed; .ci/run installs it")
        argv = [
            java,
            *HEAP,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.home / 'libs'}/*",
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(config),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ConnectError(f"Connect exited at start:\n{self.log_tail()}")
            # The REST server answers before the worker has read its config topic; listing
            # connectors succeeds only once the worker has joined and caught up.
            with contextlib.suppress(OSError, ConnectError):
                self.request("GET", "/connectors", timeout=5)
                return
            time.sleep(0.5)
        self.kill()
        raise ConnectError(f"Connect not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        """One REST call; a 4xx/5xx raises ``ConnectError`` with Connect's own message."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise ConnectError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc
        return json.loads(text) if text else None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()


def await_status(
    worker: ConnectWorker, name: str, state: str = "RUNNING", timeout: float = 60
) -> dict[str, Any]:
    """Wait until connector ``name`` and all its tasks (at least one) are in ``state``."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(ConnectError, OSError):
            status = worker.request("GET", f"/connectors/{name}/status")
            tasks = status.get("tasks", [])
            if status["connector"]["state"] == state and tasks:
                if all(t["state"] == state for t in tasks):
                    return status
                failed = [t for t in tasks if t["state"] == "FAILED"]
                if failed and state != "FAILED":
                    raise ConnectError(f"task failed: {failed[0].get('trace', '')[:3000]}")
        time.sleep(0.3)
    raise ConnectError(f"{name} not {state} after {timeout}s: {status}\n{worker.log_tail()}")
