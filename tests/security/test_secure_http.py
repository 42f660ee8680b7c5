"""The registry of ``Platform(secure=True)`` asks for HTTP Basic login, as ``nerve up --secure``'s
does, and everything the platform runs sends the admin's credentials: its ``registry_url``
carries them, so Avro services register and read schemas; the catalog written by a service
does not repeat them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from nerve import Event, Service
from nerve.security.client_settings import without_userinfo
from nerve.service.catalog import CATALOG_TOPIC
from nerve.testing import Platform


class Priced(Event, topic="secure-http.priced", key="id", format="avro"):
    id: str
    cents: int


class Taxed(Event, topic="secure-http.taxed", key="id", format="avro"):
    id: str
    cents: int


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform(secure=True) as secure:
        yield secure


def test_the_registry_refuses_a_client_without_the_admin_login(platform: Platform) -> None:
    assert platform.security is not None and platform.registry_url is not None
    bare = without_userinfo(platform.registry_url)
    assert bare != platform.registry_url
    refused = httpx.get(f"{bare}/subjects", timeout=30)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="SchemaRegistry"'
    wrong = httpx.get(f"{bare}/subjects", auth=("admin", "not-it"), timeout=30)
    assert wrong.status_code == 401
    users = platform.data_dir / "security" / "http.users"
    assert (users.stat().st_mode & 0o777) == 0o600
    assert httpx.get(f"{platform.registry_url}/subjects", timeout=30).status_code == 200


def test_an_avro_service_on_the_platform_sends_the_credentials(platform: Platform) -> None:
    service = Service("secure-http-taxer")

    @service.on(Priced)
    def tax(event: Priced) -> Taxed:
        return Taxed(id=event.id, cents=event.cents * 120 // 100)

    platform.run(service)
    platform.emit(Priced(id="p1", cents=1000))
    [taxed] = platform.expect(Taxed, where=lambda e: e.id == "p1")
    assert taxed.cents == 1200
    platform.stop_services()
    subjects = httpx.get(f"{platform.registry_url}/subjects", timeout=30).json()
    assert {"secure-http.priced-value", "secure-http.taxed-value"} <= set(subjects)
    assert platform.security is not None
    password = platform.security.admin_password
    entries = [json.loads(v) for _, v, _ in platform.read(CATALOG_TOPIC) if v is not None]
    mine = [e for e in entries if e.get("name") == "secure-http-taxer"]
    assert mine and mine[-1]["registry"] == without_userinfo(platform.registry_url)
    assert not any(password in json.dumps(e) for e in entries)
