"""``nerve connect`` against a real Connect cluster (on nerve): create, list, status, pause,
resume, stop, restart and delete a connector; Connect's refusals as clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests._connect import await_status
from tests.connect.conftest import ConnectCluster


def nerve_connect(cluster: ConnectCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", "connect", *args, "--connect", cluster.worker.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def await_state(cluster: ConnectCluster, name: str, state: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = nerve_connect(cluster, "status", name).stdout
        if all(line.split(": ")[1].startswith(state) for line in out.splitlines()[:2]):
            return out
        time.sleep(0.5)
    raise AssertionError(f"{name} not {state}: {out}")


def test_nerve_connect_operates_a_connector(
    connect_on_nerve: ConnectCluster, tmp_path: Path, topic_name
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n")
    settings = tmp_path / "source.json"
    settings.write_text(
        json.dumps({"name": name, "config": {"file": str(source), "topic": topic_name()}})
    )
    made = nerve_connect(
        connect_on_nerve,
        "create",
        name,
        "connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max=1",
        "--file",
        str(settings),
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (
        f"connector {name}: org.apache.kafka.connect.file.FileStreamSourceConnector"
    )
    await_status(connect_on_nerve.worker, name)

    listed = nerve_connect(connect_on_nerve, "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(name)]
    assert row == [name, "source", "RUNNING", "0:RUNNING", "FileStreamSourceConnector"]
    status = nerve_connect(connect_on_nerve, "status", name)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0].startswith(f"connector {name}: RUNNING on 127.0.0.1:")

    assert nerve_connect(connect_on_nerve, "pause", name).returncode == 0
    assert "task 0: PAUSED" in await_state(connect_on_nerve, name, "PAUSED")
    assert nerve_connect(connect_on_nerve, "resume", name).returncode == 0
    await_state(connect_on_nerve, name, "RUNNING")
    assert nerve_connect(connect_on_nerve, "restart", name).returncode == 0
    await_status(connect_on_nerve.worker, name)
    plugins = nerve_connect(connect_on_nerve, "plugins").stdout
    assert "io.debezium.connector.postgresql.PostgresConnector" in plugins

    deleted = nerve_connect(connect_on_nerve, "delete", name)
    assert (
        deleted.returncode == 0 and deleted.stdout.strip() == f"connector {name}: delete requested"
    )
    assert name not in nerve_connect(connect_on_nerve, "list").stdout


def test_nerve_connect_says_what_connect_refused(connect_on_nerve: ConnectCluster) -> None:
    missing = nerve_connect(connect_on_nerve, "status", "no-such-connector")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "nerve connect status: No status found for connector no-such-connector"
    )
    no_class = nerve_connect(connect_on_nerve, "create", "x", "tasks.max=1")
    assert no_class.returncode == 2
    assert "a connector needs connector.class" in no_class.stderr
    bad = nerve_connect(connect_on_nerve, "create", "x", "connector.class=com.example.Nothing")
    assert bad.returncode == 1 and "com.example.Nothing" in bad.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "nerve", "connect", "list", "--connect", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1
    assert "cannot reach Kafka Connect at http://127.0.0.1:1" in unreachable.stderr


def test_nerve_connect_catalog_announces_connectors_and_forgets_deleted_ones(
    connect_on_nerve: ConnectCluster, tmp_path: Path, topic_name
) -> None:
    from nerve.service import catalog

    name, topic = f"cat-{uuid.uuid4().hex[:8]}", topic_name()
    source = tmp_path / "in.txt"
    source.write_text("one\n")
    connect_on_nerve.worker.request(
        "PUT",
        f"/connectors/{name}/config",
        {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "file": str(source),
            "topic": topic,
        },
    )
    await_status(connect_on_nerve.worker, name)
    kafka = {"bootstrap.servers": connect_on_nerve.bootstrap, "log_level": 0}
    # The worker tracks a source's topics once it has written to them.
    deadline = time.monotonic() + 30
    record: dict[str, object] = {}
    while time.monotonic() < deadline and not record.get("emits"):
        done = nerve_connect(connect_on_nerve, "catalog", "-b", connect_on_nerve.bootstrap)
        assert done.returncode == 0, done.stderr
        assert f"connect:{name}" in done.stdout
        record = catalog.read(kafka)[f"connect:{name}"]
        time.sleep(1)
    assert record["kind"] == "connector"
    connector = record["connector"]
    assert isinstance(connector, dict)
    tasks = connector.pop("tasks")
    assert connector == {
        "class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "type": "source",
        "database": f"file://{source}",
        "state": "RUNNING",
    }
    assert [(t["id"], t["state"]) for t in tasks] == [(0, "RUNNING")] and tasks[0]["worker"]
    # The console's page of the connector shows its tasks and where its data is.
    from starlette.testclient import TestClient

    from nerve.console.app import build_app
    from nerve.console.config import ConsoleConfig

    config = ConsoleConfig(bootstrap_servers=connect_on_nerve.bootstrap, registry_url=None)
    with TestClient(build_app(config)) as console:
        page = console.get(f"/catalog/services/connect:{name}")
    assert page.status_code == 200, page.text
    assert f"file://{source}" in page.text and tasks[0]["worker"] in page.text
    assert "<td>0</td><td>RUNNING</td>" in page.text
    assert [e["topic"] for e in record["emits"]] == [topic]  # type: ignore[attr-defined]
    for command in (["catalog"], ["catalog", "asyncapi"]):  # nerve's own readers of the catalog
        shown = subprocess.run(
            [sys.executable, "-m", "nerve", *command, "-b", connect_on_nerve.bootstrap],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert f"connect:{name}" in shown.stdout and topic in shown.stdout
    # Kept announcing (--every): the deleted connector leaves the catalog without another run.
    watcher = subprocess.Popen(
        [sys.executable, "-m", "nerve", "connect", "catalog", "--every", "1",
         "-b", connect_on_nerve.bootstrap, "--connect", connect_on_nerve.worker.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # its first announcement, before the delete
        assert f"connect:{name}" in first, first
        connect_on_nerve.worker.request("DELETE", f"/connectors/{name}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and f"connect:{name}" in catalog.read(kafka):
            time.sleep(0.5)
        assert f"connect:{name}" not in catalog.read(kafka)
        assert watcher.poll() is None  # still watching
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=30)
    assert f"connect:{name}" not in out and "announced" in out, out + err  # the set changed
