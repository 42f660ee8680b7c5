"""scripts/test, the README's test command: it says what it is doing while it installs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_scripts_test_says_what_it_installs(tmp_path: Path) -> None:
    # A stand-in virtualenv whose python records its calls and succeeds: the script's own
    # steps run, nothing is installed.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "NERVE_TEST_SKIP_INSTALL"}
    env["VENV"] = str(venv)
    done = subprocess.run(
        [str(ROOT / "scripts" / "test"), "-q", "tests/nothing"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "scripts/test: installing nerve with its test and bench extras into" in done.stdout
    assert "pyproject.toml changed since the last install" in done.stdout
    assert "scripts/test: installed; now lint, formatting, types, then every test" in done.stdout
    lines = calls.read_text().splitlines()
    # Two xdist workers by whole file unless NERVE_TEST_WORKERS says otherwise.
    assert lines[0].startswith("-m pip install")
    assert lines[-1] == "-m pytest -n 2 --dist loadfile -q tests/nothing"
    # Installed once: the second run goes straight to the checks, silently.
    again = subprocess.run(
        [str(ROOT / "scripts" / "test"), "-q"], capture_output=True, text=True, env=env, timeout=60
    )
    assert again.returncode == 0 and "installing" not in again.stdout
    serial = subprocess.run(
        [str(ROOT / "scripts" / "test"), "-q", "tests/nothing"],
        capture_output=True,
        text=True,
        env={**env, "NERVE_TEST_WORKERS": "0"},
        timeout=60,
    )
    assert serial.returncode == 0, serial.stderr
    assert calls.read_text().splitlines()[-1] == "-m pytest -q tests/nothing"
