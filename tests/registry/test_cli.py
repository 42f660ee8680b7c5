"""``nerve schemas list|show|register|check`` as real commands against a real registry: the
check a CI job runs before a contract change ships."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests._registry import RegistryProcess


def nerve_schemas(registry: RegistryProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "-r", registry.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, fields: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"type": "record", "name": "Order", "fields": fields}))
    return path


def test_register_show_list_and_check(
    shared_registry: RegistryProcess, subject_name: Callable[[str], str], tmp_path: Path
) -> None:
    subject = subject_name("value")
    v1 = write(tmp_path / "v1.avsc", [{"name": "id", "type": "string"}])
    ok = write(
        tmp_path / "ok.avsc",
        [{"name": "id", "type": "string"}, {"name": "qty", "type": "int", "default": 1}],
    )
    breaking = write(tmp_path / "bad.avsc", [{"name": "id", "type": "long"}])

    checked = nerve_schemas(shared_registry, "check", subject, str(v1))
    assert checked.returncode == 0 and "no versions yet" in checked.stdout

    registered = nerve_schemas(shared_registry, "register", subject, str(v1))
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith(f"registered {subject}: id ")

    assert nerve_schemas(shared_registry, "check", subject, str(ok)).returncode == 0
    refused = nerve_schemas(shared_registry, "check", subject, str(breaking))
    assert refused.returncode == 1
    assert "INCOMPATIBLE" in refused.stdout and "id" in refused.stdout

    shown = nerve_schemas(shared_registry, "show", subject)
    assert shown.returncode == 0
    assert f"# subject {subject} version 1" in shown.stdout
    assert '"name": "Order"' in shown.stdout

    listed = nerve_schemas(shared_registry, "list", "--prefix", subject)
    assert listed.returncode == 0
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [[subject, "1"]]

    failed = nerve_schemas(shared_registry, "register", subject, str(breaking))
    assert failed.returncode == 1 and "incompatible" in failed.stderr
    missing = nerve_schemas(shared_registry, "show", subject_name("missing"))
    assert missing.returncode == 1 and "40401" in missing.stderr
    unknown_type = nerve_schemas(shared_registry, "check", subject, str(tmp_path))
    assert unknown_type.returncode == 2
