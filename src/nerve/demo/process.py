"""One demo service as its own ``nerve run`` process, shared by the demos: started, SIGKILLed
and restarted by their checks, stopped at the end, its output in a log file; and
``nerve cdc postgres`` as such a process (the CDC and shop demos' legacy databases)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nerve.testing import Platform


class ServiceProcess:
    """The service defined in ``script`` under ``nerve run`` against ``platform``, its output
    appended to ``<logs>/<name>.log`` and its streams' local state under ``state``."""

    def __init__(
        self,
        name: str,
        script: Path,
        platform: Platform,
        logs: Path,
        state: Path,
        env: dict[str, str],
    ) -> None:
        self.name, self.script, self.platform = name, script, platform
        self.logs, self.state, self.env = logs, state, env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "nerve", "run", str(self.script),
                "-b", self.platform.bootstrap, "-r", self.platform.registry_url or "",
                "--state-dir", str(self.state),
                "-X", "session.timeout.ms=6000"]  # fmt: skip

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def dead(self) -> bool:
        """It was started and has exited (on its own, unless killed)."""
        return self.proc is not None and self.proc.poll() is not None

    def failed(self) -> bool:
        """It exited with an error. After Ctrl-C, which the terminal sends to the services too
        (one process group), a clean exit is the service obeying it, not a failure."""
        return self.proc is not None and self.proc.poll() not in (None, 0)

    def status(self) -> str:
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        return "running" if code is None else f"EXITED ({code}), see {self.log}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class CaptureProcess(ServiceProcess):
    """``nerve cdc postgres`` of ``tables`` into ``<prefix>.<schema>.<table>`` as its own
    process, so a check can SIGKILL it; its log is ``<logs>/cdc.log``."""

    def __init__(
        self, dsn: str, prefix: str, tables: list[str], platform: Platform, logs: Path
    ) -> None:
        super().__init__("cdc", Path(), platform, logs, logs, dict(os.environ))
        self.dsn, self.prefix, self.tables = dsn, prefix, tables

    def command(self) -> list[str]:
        tables = [arg for table in self.tables for arg in ("--table", table)]
        return [sys.executable, "-m", "nerve", "cdc", "postgres", self.dsn,
                "--prefix", self.prefix, *tables, "-b", self.platform.bootstrap]  # fmt: skip
