"""Start a nerve broker as a subprocess for a benchmark run, and watch its memory.

The benchmark needs the broker in its own process so that its CPU can be pinned apart from the
client's (the machine has two cores and is noisy) and so that its resident memory can be measured
on its own: peak RSS is one of the targets the benchmark reports against.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psutil

_LISTENING = re.compile(r"listening on (\S+):(\d+)\s*$")
_MIB = 1024 * 1024


def nerve_command() -> list[str]:
    """The command that runs nerve from the interpreter running this benchmark.

    The console script next to the interpreter is preferred because `python -m nerve` needs a
    `__main__` module that may not exist yet; falling back to `-m` keeps a source checkout with
    PYTHONPATH=src working too.
    """
    script = Path(sys.executable).with_name("nerve")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "nerve"]


def read_vm_hwm(pid: int) -> int | None:
    """The kernel's own high-water mark of a process's RSS, in bytes (Linux only).

    Sampling can miss a short spike between two samples; VmHWM cannot, so the reported peak is the
    larger of the two. Returns None where /proc is absent or the process is gone.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """Samples a process's RSS on a background thread and remembers the maximum.

    A thread, not a timer in the measured loops, so the client's hot loops stay free of sampling
    code; at a 50 ms period the cost on the client's core is negligible.
    """

    def __init__(self, pid: int, period_s: float = 0.05) -> None:
        self._process = psutil.Process(pid)
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_bytes = 0

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread to end."""
        self._stop.set()
        self._thread.join(timeout=2)

    def sample(self) -> int:
        """Take one sample now (also folding in VmHWM) and return the peak so far, in bytes."""
        with contextlib.suppress(psutil.Error):
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
        hwm = read_vm_hwm(self._process.pid)
        if hwm is not None:
            self.peak_bytes = max(self.peak_bytes, hwm)
        return self.peak_bytes

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self.sample()


class SpawnedBroker:
    """A nerve broker in a temporary data dir, pinned to one CPU, for the length of a `with`.

    On entry it starts the broker, waits for its `listening on HOST:PORT` line and starts sampling
    its RSS; on exit it takes a last sample, stops the broker (SIGTERM, then SIGKILL) and removes
    the data dir unless asked to keep it.
    """

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        cpu: int | None = 0,
        host: str = "127.0.0.1",
        start_timeout_s: float = 30.0,
        keep_data: bool = False,
        configs: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self._command = list(command) if command else nerve_command()
        self._args = list(args)  # more options of `nerve broker`, e.g. --metrics-port 0
        self._configs = dict(configs or {})
        self._cpu = cpu
        self._host = host
        self._start_timeout_s = start_timeout_s
        self._keep_data = keep_data
        self.data_dir: Path | None = None
        self.bootstrap = ""
        self.process: subprocess.Popen[str] | None = None
        self.sampler: RssSampler | None = None
        self._stderr_path: Path | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def peak_rss_mb(self) -> float:
        """The broker's peak RSS so far, in MiB (sampled now, so it is current)."""
        if self.sampler is None:
            return 0.0
        return self.sampler.sample() / _MIB

    @property
    def pinned(self) -> bool:
        """Whether the broker was started under taskset."""
        return self._cpu is not None and shutil.which("taskset") is not None

    def __enter__(self) -> SpawnedBroker:
        self.data_dir = Path(tempfile.mkdtemp(prefix="nerve-bench-"))
        argv = [
            *self._command,
            "broker",
            "--data-dir",
            str(self.data_dir / "data"),
            "--listen",
            f"{self._host}:0",
            *(f"--config={name}={value}" for name, value in self._configs.items()),
            *self._args,
        ]
        if self.pinned:
            # taskset execs the broker, so the pid we get is the broker's own.
            argv = ["taskset", "-c", str(self._cpu), *argv]
        self._stderr_path = self.data_dir / "broker.stderr"
        stderr = open(self._stderr_path, "w", encoding="utf-8")
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        except BaseException:
            stderr.close()
            self._cleanup_dir()
            raise
        stderr.close()
        threading.Thread(target=self._drain_stdout, name="broker-stdout", daemon=True).start()
        try:
            self.bootstrap = self._await_listening()
        except BaseException:
            self._stop_process()
            self._cleanup_dir()
            raise
        self.sampler = RssSampler(self.process.pid)
        self.sampler.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.sampler is not None:
            self.sampler.sample()
            self.sampler.stop()
        self._stop_process()
        self._cleanup_dir()

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the broker wrote to stderr, for error messages."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        text = self._stderr_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise if the broker has exited, so a dead broker is reported as such, not as a stall."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"nerve broker exited with code {self.process.returncode}; stderr tail:\n"
                + self.stderr_tail()
            )

    def next_line(self, prefix: str, timeout_s: float = 10.0) -> str:
        """The next stdout line after ``listening on`` that starts with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(prefix):
                return line.strip()
        raise RuntimeError(
            f"nerve broker printed no {prefix!r} line; stderr tail:\n" + self.stderr_tail()
        )

    def _drain_stdout(self) -> None:
        # Keep reading for the broker's whole life: a full pipe would block it mid-benchmark.
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _await_listening(self) -> str:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"nerve broker did not print 'listening on HOST:PORT' within "
                    f"{self._start_timeout_s:.0f} s; stderr tail:\n{self.stderr_tail()}"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                assert self.process is not None
                code = self.process.wait()
                raise RuntimeError(
                    f"nerve broker exited with code {code} before listening; stderr tail:\n"
                    + self.stderr_tail()
                )
            match = _LISTENING.search(line.strip())
            if match:
                return f"{match.group(1)}:{match.group(2)}"

    def _stop_process(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _cleanup_dir(self) -> None:
        if self.data_dir is None:
            return
        if self._keep_data:
            print(f"kept broker data dir {self.data_dir}", file=sys.stderr)
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)


def pin_current_process(cpu: int) -> bool:
    """Pin this process (and the threads it starts later) to one CPU; False if not possible.

    Linux applies affinity per thread and new threads inherit it, so this must run before any
    librdkafka client (and its threads) exists.
    """
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        if cpu not in os.sched_getaffinity(0):
            return False
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True
