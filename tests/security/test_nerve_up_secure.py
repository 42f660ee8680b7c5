"""``nerve up --secure`` as a real process: it makes a CA, a broker certificate and an admin
credential once, prints the password the first time only, keeps the admin's settings in a 0600
file; the admin's settings work from ``-F``, ``NERVE_CLIENT_PROPERTIES`` and ``NERVE_KAFKA_*``,
and a client without them is refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from nerve.security.client_settings import read_properties
from tests._metrics import NerveUp

pytestmark = pytest.mark.slow

PASSWORD_LINE = "admin password: "


def nerve(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A nerve command with only the environment given (no NERVE_* of the test run's)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**base, **(env or {})},
    )


@pytest.fixture(scope="module")
def secure_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NerveUp]:
    up = NerveUp(
        tmp_path_factory.mktemp("secure-up") / "data",
        args=["--secure", "--no-metrics"],
    )
    up.start()
    try:
        yield up
    finally:
        up.close()


def admin_properties(up: NerveUp) -> Path:
    return up.data_dir / "security" / "admin.properties"


def test_it_prints_the_password_once_and_keeps_it_in_a_0600_file(secure_up: NerveUp) -> None:
    lines = [x for x in secure_up._stdout_lines if x.startswith(PASSWORD_LINE)]
    assert len(lines) == 1, secure_up.describe_output()
    password = lines[0].removeprefix(PASSWORD_LINE).split()[0]
    assert len(password) >= 24
    security = secure_up.data_dir / "security"
    assert stat.S_IMODE(security.stat().st_mode) == 0o700
    for secret in ("admin.properties", "ca.key", "broker.keystore.pem"):
        assert stat.S_IMODE((security / secret).stat().st_mode) == 0o600, secret
    settings = read_properties(admin_properties(secure_up))
    assert settings == {
        "bootstrap.servers": secure_up.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "admin",
        "sasl.password": password,
        "ssl.ca.location": str((security / "ca.pem").resolve()),
    }
    # The listener is the one named, SASL_SSL: the broker says so before "listening on".
    assert secure_up.listeners == {"SASL_SSL": secure_up.bootstrap}


def test_topics_list_with_the_admin_properties_file(secure_up: NerveUp) -> None:
    path = str(admin_properties(secure_up))
    made = nerve("-F", path, "topics", "create", "up-secure.f", "-p", "2")
    assert made.returncode == 0, made.stderr
    listed = nerve("-F", path, "topics", "list", "--json")  # -F before the command
    assert listed.returncode == 0, listed.stderr
    assert {"topic": "up-secure.f", "partitions": 2} in json.loads(listed.stdout)
    after = nerve("topics", "list", "--json", "-F", path)  # and after it
    assert after.returncode == 0, after.stderr
    assert "up-secure.f" in {t["topic"] for t in json.loads(after.stdout)}


def test_the_environment_gives_the_same_settings(secure_up: NerveUp) -> None:
    path = admin_properties(secure_up)
    by_file = nerve("topics", "list", "--json", env={"NERVE_CLIENT_PROPERTIES": str(path)})
    assert by_file.returncode == 0, by_file.stderr
    variables = {
        "NERVE_KAFKA_" + name.upper().replace(".", "_"): value
        for name, value in read_properties(path).items()
    }
    assert variables["NERVE_KAFKA_SASL_USERNAME"] == "admin"
    by_variables = nerve("topics", "list", "--json", env=variables)
    assert by_variables.returncode == 0, by_variables.stderr
    # The registry may add _schemas between the two: the second sees at least the first's.
    first, second = (json.loads(done.stdout) for done in (by_file, by_variables))
    assert all(topic in second for topic in first)
    # A NERVE_KAFKA_ variable wins over the file, and -X over both: a wrong password refuses.
    wrong = {"NERVE_CLIENT_PROPERTIES": str(path), "NERVE_KAFKA_SASL_PASSWORD": "wrong"}
    refused = nerve("topics", "list", "-X", "socket.timeout.ms=10000", env=wrong)
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    fixed = nerve("topics", "list", "-X", f"sasl.password={variables['NERVE_KAFKA_SASL_PASSWORD']}",
                  env=wrong)  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr


def test_a_plaintext_client_is_refused(secure_up: NerveUp) -> None:
    admin = AdminClient({"bootstrap.servers": secure_up.bootstrap, "log_level": 0,
                         "socket.timeout.ms": 5000})  # fmt: skip
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    done = nerve("topics", "list", "-b", secure_up.bootstrap, "-X", "socket.timeout.ms=5000")
    assert done.returncode != 0
    assert done.stderr.strip() and "Traceback" not in done.stderr


def test_a_wrong_admin_password_is_refused(secure_up: NerveUp) -> None:
    settings = read_properties(admin_properties(secure_up))
    errors: list[KafkaError] = []
    admin = AdminClient(
        {**settings, "sasl.password": "not-it", "log_level": 0, "error_cb": errors.append}
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(0)
    refusals = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert refusals and "Invalid username or password" in refusals[0].str()


def _admin_login(up: NerveUp) -> tuple[str, str]:
    return "admin", read_properties(admin_properties(up))["sasl.password"]


def test_the_registry_of_nerve_up_asks_for_the_admin_login(secure_up: NerveUp) -> None:
    assert any(
        x.startswith("registry and console: HTTP Basic login") for x in secure_up._stdout_lines
    )
    users = secure_up.data_dir / "security" / "http.users"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    url = secure_up.registry_url
    subject = f"{url}/subjects/up-secure-value/versions"
    schema = {"schema": json.dumps({"type": "string"})}
    refused = httpx.post(subject, json=schema, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic ")
    assert httpx.get(f"{url}/subjects", auth=("admin", "wrong"), timeout=30).status_code == 401
    login = _admin_login(secure_up)
    made = httpx.post(subject, json=schema, auth=login, timeout=30)  # it reaches Kafka as admin
    assert made.status_code == 200 and "id" in made.json()
    assert "up-secure-value" in httpx.get(f"{url}/subjects", auth=login, timeout=30).json()


def test_the_console_of_nerve_up_asks_for_the_admin_login(secure_up: NerveUp) -> None:
    path = str(admin_properties(secure_up))
    made = nerve("-F", path, "topics", "create", "up-secure.console")
    assert made.returncode == 0, made.stderr
    url = secure_up.stdout_line("console on ").rsplit(" ", 1)[1]
    refused = httpx.get(f"{url}/topics", timeout=30)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Basic realm="nerve-console"')
    assert "up-secure.console" not in refused.text
    login = _admin_login(secure_up)
    page = httpx.get(f"{url}/topics", auth=login, timeout=30)
    assert page.status_code == 200 and 'data-topic="up-secure.console"' in page.text
    assert '<span class="user" title="logged in as">admin</span>' in page.text
    # The console reaches the registry as the admin too (its login is on).
    httpx.post(
        f"{secure_up.registry_url}/subjects/up-secure.console-value/versions",
        json={"schema": json.dumps({"type": "string"})},
        auth=login,
        timeout=30,
    ).raise_for_status()
    schemas = httpx.get(f"{url}/schemas", auth=login, timeout=30)
    assert schemas.status_code == 200 and "up-secure.console-value" in schemas.text


def test_a_restart_keeps_the_credential_and_does_not_print_it(tmp_path: Path) -> None:
    up = NerveUp(tmp_path / "data", args=["--secure", "--no-console", "--no-metrics",
                                          "--no-registry"])  # fmt: skip
    try:
        up.start()
        first = read_properties(admin_properties(up))
        up.restart()
        assert not [x for x in up._stdout_lines if x.startswith(PASSWORD_LINE)]
        assert any(x.startswith("admin client settings: ") for x in up._stdout_lines)
        again = read_properties(admin_properties(up))
        assert again["sasl.password"] == first["sasl.password"]
        admin = AdminClient({**again, "log_level": 0})
        assert admin.list_topics(timeout=10).brokers
    finally:
        up.close()
