"""Where the clients nerve makes take their settings from: NERVE_CLIENT_PROPERTIES, then
NERVE_KAFKA_*, then -F and -X; a bad file is one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerve.security import client_settings
from nerve.service.config import RunConfig


def test_variable_names_follow_confluents_images() -> None:
    assert client_settings.setting_name("NERVE_KAFKA_SASL_USERNAME") == "sasl.username"
    assert client_settings.setting_name("NERVE_KAFKA_SSL_CA_LOCATION") == "ssl.ca.location"
    assert client_settings.setting_name("NERVE_KAFKA_A__B") == "a_b"
    assert client_settings.setting_name("NERVE_KAFKA_A___B_C") == "a-b.c"


def test_the_file_then_the_variables(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# a comment\n! another\n\nsecurity.protocol = SASL_SSL\nsasl.password=a=b\n"
        "sasl.username=from-file\n"
    )
    env = {
        "NERVE_CLIENT_PROPERTIES": str(path),
        "NERVE_KAFKA_SASL_USERNAME": "from-variable",
        "NERVE_KAFKA_": "ignored",
        "OTHER": "x",
    }
    assert client_settings.from_environment(env) == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "a=b",  # the value keeps what follows the first '='
        "sasl.username": "from-variable",
    }


def test_a_bad_line_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.properties"
    path.write_text("security.protocol=SSL\njust words\n")
    with pytest.raises(client_settings.ClientSettingsError, match=r"bad.properties:2: expected"):
        client_settings.read_properties(path)
    with pytest.raises(client_settings.ClientSettingsError, match="cannot read"):
        client_settings.read_properties(tmp_path / "missing.properties")


def test_written_properties_are_the_owners_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "user.properties"
    client_settings.write_properties(path, {"sasl.password": "s3cret", "x": 1}, "two\nlines")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("# two\n# lines\n")
    assert client_settings.read_properties(path) == {"sasl.password": "s3cret", "x": "1"}


def test_run_config_takes_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "svc.properties"
    path.write_text("bootstrap.servers=broker.example:9093\nsecurity.protocol=SASL_SSL\n")
    for name in [n for n in os.environ if n.startswith("NERVE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NERVE_CLIENT_PROPERTIES", str(path))
    monkeypatch.setenv("NERVE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    config = RunConfig()
    assert config.bootstrap_servers == "broker.example:9093"
    assert config.client_config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
    }
    monkeypatch.setenv("NERVE_BOOTSTRAP_SERVERS", "other:9092")  # the older variable wins
    assert RunConfig().bootstrap_servers == "other:9092"


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_bad_properties_file_is_one_line_from_a_command(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bad.properties"
    path.write_text("no equals sign\n")
    options = ["-F", str(path)]
    args = [*options, "topics", "list"] if where == "before" else ["topics", "list", *options]
    done = subprocess.run(
        [sys.executable, "-m", "nerve", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"nerve topics: {path}:1: expected NAME=VALUE, got 'no equals sign'"
    ]
