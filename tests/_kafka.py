"""Run Apache Kafka (KRaft, one combined broker and controller, loopback only) for tests and
benchmarks, from the jars ``scripts/kafka fetch`` resolved from Maven Central: 4.4.0, or the
version ``KAFKA_VERSION`` names (4.1.0 is the older baseline that still works).

``KafkaProcess`` mirrors ``BrokerProcess``: ``start()`` formats the storage with a fresh
cluster id, starts ``kafka.Kafka`` with the heap kafka-server-start.sh uses, and waits until
an AdminClient can read metadata; ``stop()`` sends SIGTERM and waits; ``kill()`` is SIGKILL.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")  # scripts/kafka's default too
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP = ["-Xmx1G", "-Xms1G"]  # kafka-server-start.sh's default


class KafkaStartError(RuntimeError):
    pass


def kafka_home() -> Path:
    """The cache folder with ``libs/`` and ``log4j2.properties`` (fetched on first use)."""
    out = subprocess.run([str(REPO / "scripts" / "kafka"), "fetch"], capture_output=True, text=True)
    if out.returncode != 0:
        raise KafkaStartError(f"scripts/kafka fetch failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KafkaProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        configs: Mapping[str, str | int] | None = None,
        cpu: int | None = None,
        listeners: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.configs = {k: str(v) for k, v in (configs or {}).items()}
        self.cpu = cpu
        # Listeners besides PLAINTEXT (kept for the broker's own use and readiness checks):
        # name -> security protocol; ``listener_addresses`` gives each one's HOST:PORT.
        self.extra_listeners = dict(listeners or {})
        self.listener_addresses: dict[str, str] = {}
        self.starts_retried = False
        self.port = 0
        self.controller_port = 0
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".kafka.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.home: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _properties(self) -> str:
        extra = "".join(f",{n}://{a}" for n, a in self.listener_addresses.items())
        protocols = "".join(f",{n}:{p}" for n, p in self.extra_listeners.items())
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
                + extra
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}" + extra,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" + protocols
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            **self.configs,
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _java(self, *args: str) -> list[str]:
        assert self.home is not None
        java = shutil.which("java")
        if java is None:
            raise KafkaStartError("java is not installed; .ci/run installs it")
        argv = [
            java,
            *HEAP,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.home / 'libs'}/*",
            *args,
        ]
        if self.cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(self.cpu), *argv]
        return argv

    def start(self) -> None:
        try:
            self._start()
        except KafkaStartError as exc:
            # A free port picked for a listener was taken by another process before Kafka
            # bound it (other brokers start on this machine too): once more, new ports.
            if "Address already in use" not in str(exc) or self.starts_retried:
                raise
            self.starts_retried = True
            self.kill()
            self.port = 0
            self._start()

    def _start(self) -> None:
        self.home = self.home or kafka_home()
        fresh = not (self.data_dir / "meta.properties").exists()
        if not self.port:
            self.port, self.controller_port = _free_port(), _free_port()
            self.listener_addresses = {
                name: f"127.0.0.1:{_free_port()}" for name in self.extra_listeners
            }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.with_name(self.data_dir.name + ".server.properties")
        config.write_text(self._properties())
        if fresh:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            formatted = subprocess.run(
                # "=": a random id may start with "-", which would read as an option.
                self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                           "--config", str(config)),
                capture_output=True, text=True,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise KafkaStartError(f"formatting Kafka storage failed: {formatted.stderr}")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT
            )
        self._await_ready()

    def _await_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + START_TIMEOUT_S
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise KafkaStartError(f"Kafka exited at start:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if admin.list_topics(timeout=2).brokers:
                    return
            time.sleep(0.2)
        self.kill()
        raise KafkaStartError(f"Kafka not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
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

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        for suffix in (".server.properties", ".kafka.log"):
            with contextlib.suppress(OSError):
                os.unlink(self.data_dir.with_name(self.data_dir.name + suffix))
