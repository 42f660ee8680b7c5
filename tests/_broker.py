"""Run the nerve broker as a real subprocess for tests.

``BrokerProcess`` starts ``python -m nerve broker`` on a data directory, waits for the single
``listening on HOST:PORT`` line on stdout, and keeps the broker's stderr in a file so a failing
test can show what the broker said.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
LISTENING_PREFIX = "listening on "
LISTENER_PREFIX = "listener "  # "listener NAME (PROTOCOL) on HOST:PORT", one per listener


class BrokerStartError(RuntimeError):
    """The broker exited or stayed silent before printing its ``listening on`` line."""


class BrokerProcess:
    """One broker subprocess bound to one data directory.

    The broker is started by ``start()`` (or by the fixtures). ``restart()`` reuses the data
    directory and asks for the same port again, so clients configured with ``bootstrap`` before
    the restart can reconnect; if that port cannot be bound any more, it falls back to a fresh
    one and ``bootstrap`` changes.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        configs: Mapping[str, str | int] | None = None,
        advertised: str | None = None,
        log_path: Path | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)  # more options of the command, e.g. --metrics-port 0
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.configs = {k: str(v) for k, v in (configs or {}).items()}
        self.advertised = advertised
        # stderr lives next to the data dir, never inside it: the broker owns its data dir.
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + ".stderr.log")
        self.host = "127.0.0.1"
        self.port = 0
        # Listener name -> HOST:PORT, when the broker has several or secure ones.
        self.listeners: dict[str, str] = {}
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout_lines: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise RuntimeError("broker is not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("broker is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, port: int) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "nerve",
            "broker",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"{self.host}:{port}",
        ]
        if self.advertised:
            cmd += ["--advertised", self.advertised]
        for key, value in self.configs.items():
            cmd += ["--config", f"{key}={value}"]
        return cmd + self.args

    def start(self, port: int = 0, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        if self.running:
            raise RuntimeError("broker is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: port {port} =====\n".encode())
        stderr = self.log_path.open("ab")
        try:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self._proc = subprocess.Popen(
                self.command(port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        finally:
            stderr.close()
        self._listening = threading.Event()
        self._stdout_lines = []
        self._reader = threading.Thread(
            target=self._read_stdout, args=(self._proc, self._listening), daemon=True
        )
        self._reader.start()

        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self._proc.poll() is not None:
                self._reader.join(1)
                raise BrokerStartError(
                    f"broker exited with code {self._proc.returncode} before listening\n"
                    f"command: {' '.join(self.command(port))}\n{self.describe_output()}"
                )
            if time.monotonic() > deadline:
                self._signal(signal.SIGKILL)
                self._proc.wait(10)
                raise BrokerStartError(
                    f"broker printed no '{LISTENING_PREFIX}HOST:PORT' line within {timeout}s\n"
                    f"command: {' '.join(self.command(port))}\n{self.describe_output()}"
                )
        line = next(x for x in self._stdout_lines if x.startswith(LISTENING_PREFIX))
        host, _, port_text = line[len(LISTENING_PREFIX) :].strip().rpartition(":")
        self.host = host or self.host
        self.port = int(port_text)
        self.listeners = {}
        for text in self._stdout_lines:
            if text.startswith(LISTENER_PREFIX):
                name, _, rest = text[len(LISTENER_PREFIX) :].partition(" ")
                self.listeners[name] = rest.rpartition(" on ")[2].strip()
        return self

    def stdout_line(self, prefix: str, timeout: float = 10.0) -> str:
        """The first line of stdout that starts with ``prefix``, once printed."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self._stdout_lines):
                if line.startswith(prefix):
                    return line
            if time.monotonic() > deadline or not self.running:
                raise AssertionError(f"no {prefix!r} line on stdout\n{self.describe_output()}")
            time.sleep(0.02)

    @property
    def metrics_url(self) -> str:
        """Where ``--metrics-port`` serves (the ``metrics on URL`` line)."""
        return self.stdout_line("metrics on ").removeprefix("metrics on ").strip()

    def _read_stdout(self, proc: subprocess.Popen[bytes], listening: threading.Event) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stdout_lines.append(line)
            if line.startswith(LISTENING_PREFIX):
                listening.set()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code. SIGKILLs (and raises) if it hangs."""
        if self._proc is None:
            raise RuntimeError("broker is not started")
        self._signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._proc.wait(10)
            raise RuntimeError(
                f"broker did not exit within {timeout}s of SIGTERM\n{self.describe_output()}"
            ) from None
        self._finish()
        return code

    def kill(self) -> int:
        """SIGKILL: no chance to flush or close anything."""
        if self._proc is None:
            raise RuntimeError("broker is not started")
        self._signal(signal.SIGKILL)
        code = self._proc.wait(10)
        self._finish()
        return code

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def restart(self, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        """Stop (SIGTERM) if running, then start on the same data dir and port."""
        if self.running:
            self.stop()
        previous = self.port
        try:
            return self.start(previous, timeout)
        except BrokerStartError:
            if not previous:
                raise
        # The old port is taken by someone else: a fresh port is better than no broker.
        return self.start(0, timeout)

    def close(self) -> None:
        """Teardown: stop gracefully, and make sure nothing is left behind."""
        if self.running:
            with contextlib.suppress(RuntimeError):
                self.stop()
        elif self._proc is not None:
            self._finish()

    # -- diagnostics -----------------------------------------------------------------------

    def stderr_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, lines: int = 80) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    def describe_output(self, lines: int = 80) -> str:
        stdout = "\n".join(self._stdout_lines[-20:]) or "<nothing>"
        return f"--- broker stdout ---\n{stdout}\n--- broker stderr (tail) ---\n" + (
            self.stderr_tail(lines) or "<nothing>"
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"BrokerProcess({self.data_dir}, {state}, port={self.port})"
