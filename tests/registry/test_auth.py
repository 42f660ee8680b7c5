"""HTTP Basic authentication of ``nerve registry`` (issue 17, item 4), set up with Confluent
Schema Registry's settings and files: a real registry process on the shared broker, called by
confluent-kafka's SchemaRegistryClient (``basic.auth.user.info``), by raw HTTP and by
``nerve schemas``."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests._broker import BrokerProcess
from tests._registry import RegistryProcess

AVRO = '{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}'
V1 = "application/vnd.schemaregistry.v1+json"

RegistryWith = Callable[..., RegistryProcess]


@pytest.fixture
def registry_with(shared_broker: BrokerProcess, tmp_path: Path) -> Iterator[RegistryWith]:
    """``registry_with(settings)``: a registry with its own ``_schemas`` topic and those
    registry settings, stopped at teardown."""
    started: list[RegistryProcess] = []

    def make(settings: dict[str, str]) -> RegistryProcess:
        topic = f"_schemas-auth-{uuid.uuid4().hex[:8]}"
        proc = RegistryProcess(
            tmp_path / f"registry{len(started)}", shared_broker.bootstrap, topic, settings
        )
        started.append(proc)
        return proc.start()

    try:
        yield make
    finally:
        for proc in started:
            proc.close()


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "password-file"
    md5 = hashlib.md5(b"carol-secret", usedforsecurity=False).hexdigest()
    path.write_text(
        "# Jetty's format: user: password[,role ...]\n"
        "admin: admin-secret,admin\n"
        "dev: dev-secret,developer\n"
        f"carol: MD5:{md5},admin\n"
    )
    return path


def jaas_file(tmp_path: Path, users: Path) -> Path:
    """What Confluent's docs give the JVM (-Djava.security.auth.login.config=...)."""
    path = tmp_path / "jaas.conf"
    path.write_text(
        "SchemaRegistry {\n"
        "  org.eclipse.jetty.jaas.spi.PropertyFileLoginModule required\n"
        f'  file="{users}"\n'
        '  debug="false";\n'
        "};\n"
    )
    return path


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": V1}


@pytest.fixture
def secured(registry_with: RegistryWith, tmp_path: Path) -> RegistryProcess:
    jaas = jaas_file(tmp_path, users_file(tmp_path))
    return registry_with(
        {
            "authentication.method": "BASIC",
            "authentication.realm": "SchemaRegistry",
            "authentication.roles": "admin,developer",
            "authentication.jaas.file": str(jaas),
        }
    )


def test_confluent_client_with_user_info_registers_and_reads(secured: RegistryProcess) -> None:
    client = SchemaRegistryClient(
        {"url": secured.url, "basic.auth.user.info": "admin:admin-secret"}
    )
    schema_id = client.register_schema("orders-value", Schema(AVRO, "AVRO"))
    assert client.get_schema(schema_id).schema_str == AVRO
    assert client.get_subjects() == ["orders-value"]
    # Another user with an allowed role, and an MD5: password, read the same.
    dev = SchemaRegistryClient({"url": secured.url, "basic.auth.user.info": "dev:dev-secret"})
    assert dev.get_latest_version("orders-value").schema_id == schema_id
    carol = SchemaRegistryClient({"url": secured.url, "basic.auth.user.info": "carol:carol-secret"})
    assert carol.get_subjects() == ["orders-value"]


@pytest.mark.parametrize(
    "user_info", ["admin:wrong", "nobody:admin-secret", "admin:", "admin:admin-secretX"]
)
def test_confluent_client_with_wrong_credentials_gets_401(
    secured: RegistryProcess, user_info: str
) -> None:
    client = SchemaRegistryClient({"url": secured.url, "basic.auth.user.info": user_info})
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("refused-value", Schema(AVRO, "AVRO"))
    assert refused.value.http_status_code == 401
    assert refused.value.error_code == 401
    # Nothing was written: the admin sees no such subject.
    admin = SchemaRegistryClient({"url": secured.url, "basic.auth.user.info": "admin:admin-secret"})
    assert "refused-value" not in admin.get_subjects()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer admin-secret"},
        {"Authorization": "Basic " + base64.b64encode(b"admin-secret").decode()},  # no colon
    ],
)
def test_requests_without_valid_credentials_get_401_with_a_challenge(
    secured: RegistryProcess, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/subjects"),
        ("GET", "/"),
        ("GET", "/_health"),
        ("POST", "/subjects/x-value/versions"),
        ("GET", "/nope"),
    ]:
        response = httpx.request(
            method, secured.url + path, headers={"Accept": V1, **headers}, json={"schema": AVRO}
        )
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == 'Basic realm="SchemaRegistry"'
        assert response.json() == {"error_code": 401, "message": "Unauthorized"}
        assert response.headers["content-type"] == V1


def test_a_user_without_an_allowed_role_gets_403(
    registry_with: RegistryWith, tmp_path: Path
) -> None:
    proc = registry_with(
        {
            "authentication.method": "BASIC",
            "authentication.roles": "admin",
            "authentication.users.file": str(users_file(tmp_path)),
        }
    )
    refused = httpx.get(proc.url + "/subjects", headers=basic("dev", "dev-secret"))
    assert refused.status_code == 403
    assert refused.json() == {"error_code": 403, "message": "Forbidden"}
    assert httpx.get(proc.url + "/subjects", headers=basic("admin", "admin-secret")).json() == []


def test_any_user_with_roles_star_and_skip_paths(
    registry_with: RegistryWith, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    users.write_text("norole: pw\n")
    proc = registry_with(
        {
            "authentication.method": "basic",
            "authentication.realm": "nerve",
            "authentication.users.file": str(users),
            "authentication.skip.paths": "/_health,/v1/metadata/*",
        }
    )
    assert httpx.get(proc.url + "/subjects", headers=basic("norole", "pw")).status_code == 200
    anonymous = httpx.get(proc.url + "/subjects")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="nerve"'
    assert httpx.get(proc.url + "/_health").status_code == 200
    assert httpx.get(proc.url + "/v1/metadata/id").status_code == 200
    assert httpx.get(proc.url + "/_healthX").status_code == 401


def test_nerve_schemas_takes_credentials_in_the_url(secured: RegistryProcess) -> None:
    url = secured.url.replace("http://", "http://admin:admin-secret@")
    listed = subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "-r", url, "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "-r", secured.url, "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "401" in refused.stderr + refused.stdout


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"authentication.method": "BASIC"}, "needs authentication.jaas.file"),
        ({"authentication.method": "DIGEST"}, "must be NONE, BASIC or BEARER"),
        (
            {"authentication.method": "BASIC", "authentication.users.file": "/nonexistent/u"},
            "cannot read the users file",
        ),
        (
            {"authentication.method": "BASIC", "authentication.users.file": "{obf}"},
            "OBF: passwords are not supported",
        ),
        (
            {
                "authentication.method": "BASIC",
                "authentication.jaas.file": "{jaas}",
                "authentication.realm": "Other",
            },
            "has no section 'Other'",
        ),
    ],
)
def test_bad_authentication_settings_refuse_to_start(
    shared_broker: BrokerProcess, tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    obf = tmp_path / "obf"
    obf.write_text("admin: OBF:1v2j1uum1xtv1zej1zer1xtn1uvk1v1v,admin\n")
    jaas = jaas_file(tmp_path, users_file(tmp_path))
    args = [
        f"--config={name}={value.format(obf=obf, jaas=jaas)}" for name, value in settings.items()
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nerve",
            "registry",
            "-b",
            shared_broker.bootstrap,
            "--listen",
            "127.0.0.1:0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # as every bad --config of nerve registry
    assert says in done.stderr
    assert "listening on" not in done.stdout
