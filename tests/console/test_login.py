"""Logging in to ``nerve console`` (issue 17, item 4): HTTP Basic with the registry's settings
and users file, the user's name in the page header, and each user reaching the broker as
themselves (SASL), so Kafka's ACLs decide which topics and records the console shows them. A
real console process against Platform(secure=True): SASL_SSL, StandardAuthorizer on."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from nerve.testing import Platform
from tests._console import ConsoleProcess


@dataclass
class Secure:
    platform: Platform
    users: Path
    passwords: dict[str, str]
    mine: str  # a topic alice may read
    theirs: str  # one she may not


def _acl(principal: str, topic: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def _wait_acls(admin: AdminClient, count: int) -> None:
    """Until DescribeAcls lists ``count`` ACLs (an authorizer may apply them a moment late)."""
    wildcard = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + 30
    while len(admin.describe_acls(wildcard).result(30)) != count:
        assert time.monotonic() < deadline, "the ACLs never showed"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    root = tmp_path_factory.mktemp("console-login")
    with Platform(root / "platform", secure=True) as platform:
        assert platform.security is not None
        passwords = {"admin": platform.security.admin_password, "alice": secrets.token_hex(8)}
        platform.add_user("admin", passwords["admin"])  # SCRAM too: users log in with it
        platform.add_user("alice", passwords["alice"])
        tag = uuid.uuid4().hex[:8]
        mine, theirs = f"login-{tag}-alice", f"login-{tag}-bob"
        admin = AdminClient(platform.kafka())
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in (mine, theirs)]).values():
            future.result(30)
        grants = [_acl("User:alice", mine, op) for op in (AclOperation.DESCRIBE, AclOperation.READ)]
        # The console's readers carry a throwaway group id, whose coordinator librdkafka
        # looks up: browsing needs DESCRIBE on groups prefixed nerve-console- (docs say so).
        grants.append(
            AclBinding(
                ResourceType.GROUP,
                "nerve-console-",
                ResourcePatternType.PREFIXED,
                "User:alice",
                "*",
                AclOperation.DESCRIBE,
                AclPermissionType.ALLOW,
            )
        )
        for future in admin.create_acls(grants).values():
            future.result(30)
        _wait_acls(admin, len(grants))
        producer = Producer(platform.kafka(**{"linger.ms": 0}))
        producer.produce(mine, key=b"k", value=b'{"secret": "for-alice"}')
        producer.produce(theirs, key=b"k", value=b'{"secret": "for-bob-only"}')
        assert producer.flush(30) == 0
        users = root / "console-users"
        # Jetty's users file, as the registry reads it; mallory has no Kafka credential.
        users.write_text(
            f"admin: {passwords['admin']},admin\n"
            f"alice: {passwords['alice']},viewer\n"
            "mallory: mallory-secret,viewer\n"
            "eve: eve-secret\n"
        )
        yield Secure(platform, users, passwords, mine, theirs)


def _console(secure: Secure, tmp_path: Path, *settings: str) -> ConsoleProcess:
    platform = secure.platform
    assert platform.security is not None and platform.registry_url is not None
    extra = [
        "-F", str(platform.security.admin_properties),
        "--config", "authentication.method=BASIC",
        "--config", f"authentication.users.file={secure.users}",
        "--config", "user.sasl.mechanism=SCRAM-SHA-512",
    ]  # fmt: skip
    for setting in settings:
        extra += ["--config", setting]
    return ConsoleProcess(tmp_path / "c", platform.bootstrap, platform.registry_url, *extra)


@pytest.fixture(scope="module")
def console(secure: Secure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    process = _console(secure, tmp_path_factory.mktemp("console")).start()
    try:
        yield process
    finally:
        process.close()


def _get(console: ConsoleProcess, path: str, auth: tuple[str, str] | None) -> httpx.Response:
    return httpx.get(console.url + path, auth=auth, timeout=30)


def test_without_credentials_every_page_is_refused_with_a_basic_challenge(
    console: ConsoleProcess, secure: Secure
) -> None:
    for path in ("/", "/topics", f"/topics/{secure.mine}/messages", "/static/console.css"):
        for auth in (None, ("alice", "wrong"), ("nobody", secure.passwords["alice"])):
            answer = _get(console, path, auth)
            assert answer.status_code == 401, (path, auth)
            assert answer.headers["www-authenticate"].startswith('Basic realm="nerve-console"')
            assert secure.mine not in answer.text
    bad_header = httpx.get(
        console.url + "/topics", headers={"Authorization": "Basic !!!"}, timeout=30
    )
    assert bad_header.status_code == 401
    assert _get(console, "/healthz", None).status_code == 200  # authentication.skip.paths


def test_the_header_names_the_logged_in_user(console: ConsoleProcess, secure: Secure) -> None:
    for user in ("admin", "alice"):
        page = _get(console, "/topics", (user, secure.passwords[user]))
        assert page.status_code == 200
        assert f'<span class="user" title="logged in as">{user}</span>' in page.text


def test_each_user_sees_the_topics_and_records_kafka_lets_them(
    console: ConsoleProcess, secure: Secure
) -> None:
    admin = ("admin", secure.passwords["admin"])
    alice = ("alice", secure.passwords["alice"])
    listing = _get(console, "/topics", admin).text
    assert f'data-topic="{secure.mine}"' in listing and f'data-topic="{secure.theirs}"' in listing
    listing = _get(console, "/topics", alice).text
    assert f'data-topic="{secure.mine}"' in listing
    assert secure.theirs not in listing
    mine = _get(console, f"/topics/{secure.mine}/messages?from=start", alice)
    assert mine.status_code == 200 and "for-alice" in mine.text, mine.text[-1500:]
    theirs = _get(console, f"/topics/{secure.theirs}/messages?from=start", alice)
    assert theirs.status_code == 404 and "for-bob-only" not in theirs.text
    assert (
        "for-bob-only" in _get(console, f"/topics/{secure.theirs}/messages?from=start", admin).text
    )


def test_a_user_the_broker_does_not_know_sees_nothing(
    console: ConsoleProcess, secure: Secure
) -> None:
    """mallory is in the users file but has no Kafka credential: the console does not fall
    back to its own principal, it shows the broker's refusal."""
    page = _get(console, "/topics", ("mallory", "mallory-secret"))
    assert page.status_code == 502
    assert secure.mine not in page.text and secure.theirs not in page.text


def test_an_acl_granted_later_shows_the_topic_without_a_restart(
    console: ConsoleProcess, secure: Secure
) -> None:
    alice = ("alice", secure.passwords["alice"])
    tag = uuid.uuid4().hex[:8]
    later = f"login-{tag}-later"
    admin = AdminClient(secure.platform.kafka())
    admin.create_topics([NewTopic(later, 1, 1)])[later].result(30)
    assert later not in _get(console, "/topics", alice).text
    admin.create_acls([_acl("User:alice", later, AclOperation.DESCRIBE)])[
        _acl("User:alice", later, AclOperation.DESCRIBE)
    ].result(30)
    deadline = time.monotonic() + 30
    while f'data-topic="{later}"' not in _get(console, "/topics", alice).text:
        assert time.monotonic() < deadline, "the new ACL never took effect"
        time.sleep(0.2)


def test_roles_and_the_console_principal(secure: Secure, tmp_path: Path) -> None:
    """authentication.roles keeps out a user with none of them (403); kafka.principal=console
    shows every user what the console's own principal (here the admin) sees."""
    process = _console(
        secure, tmp_path, "authentication.roles=admin,viewer", "kafka.principal=console"
    ).start()
    try:
        assert _get(process, "/topics", ("eve", "eve-secret")).status_code == 403
        page = _get(process, "/topics", ("alice", secure.passwords["alice"]))
        assert page.status_code == 200 and f'data-topic="{secure.theirs}"' in page.text
        assert '<span class="user" title="logged in as">alice</span>' in page.text
    finally:
        process.close()


def test_logout_refuses_whatever_it_is_sent_with_the_realm_and_says_logged_out(
    console: ConsoleProcess, secure: Secure
) -> None:
    alice = ("alice", secure.passwords["alice"])
    page = _get(console, "/topics", alice)
    assert '<a class="logout" href="/logout">log out</a>' in page.text
    for auth in (alice, None, ("alice", "wrong")):
        answer = _get(console, "/logout", auth)
        assert answer.status_code == 401, auth
        assert answer.headers["www-authenticate"] == 'Basic realm="nerve-console", charset="UTF-8"'
        assert answer.headers["cache-control"] == "no-store"
        assert "You are logged out" in answer.text and '<a href="/">Log in again</a>' in answer.text
    assert _get(console, "/topics", alice).status_code == 200  # the server keeps no session


@pytest.mark.slow
def test_a_browser_forgets_the_login_after_log_out(console: ConsoleProcess, secure: Secure) -> None:
    """Debian's Chromium (Playwright, as test_browser.py): logged in once, it sends the
    remembered credentials with every page; after the "log out" link it sends none, so the
    console answers 401. Headless Chromium has no login prompt: it ends an unanswered
    challenge with net::ERR_INVALID_AUTH_CREDENTIALS where a desktop browser asks again, so
    the statuses are read from the responses the browser received."""
    import shutil

    from playwright.sync_api import Error, sync_playwright

    from tests.console.test_browser import CHROMIUM

    assert shutil.which(CHROMIUM), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    password = secure.passwords["alice"]
    host = console.url.removeprefix("http://")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(20_000)
            answers: list[tuple[str, int]] = []

            def answered(response: Any) -> None:
                if response.request.is_navigation_request():
                    answers.append((response.url.split(host, 1)[1], response.status))

            page.on("response", answered)
            # Credentials in the address, as typed into the browser's login prompt: the
            # browser keeps them for the realm and sends them with the next pages.
            page.goto(f"http://alice:{password}@{host}/")
            assert page.locator("span.user").inner_text() == "alice"
            page.goto(f"{console.url}/topics")  # no credentials in the address
            assert page.locator(f'tr[data-topic="{secure.mine}"]').count() == 1
            assert answers[-1] == ("/topics", 200)
            try:
                with page.expect_navigation():
                    page.click("a.logout")
            except Error as exc:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
            assert answers[-1] == ("/logout", 401)
            try:
                page.goto(f"{console.url}/topics")
            except Error as exc:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
            assert answers[-1] == ("/topics", 401)  # the remembered login is gone
            # Logging in again works as the first time.
            again = context.new_page()
            again.goto(f"http://alice:{password}@{host}/topics")
            assert again.locator("span.user").inner_text() == "alice"
        finally:
            browser.close()
