"""The console in a real browser: Debian's Chromium driven by Playwright (one browser for the
file), clicking through every page against the live system of conftest.py: Avro and
Protobuf values decoded, a filter scan, the live tail, produce, groups, schemas, the lineage
graph, a trace across three services and a dead-letter replay.

Set NERVE_CONSOLE_SCREENSHOTS=DIR to save a screenshot of each main page there (how the
pictures in docs/console.md are made)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.console.conftest import TAIL_TOPIC, System

CHROMIUM = os.environ.get("NERVE_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("NERVE_CONSOLE_SCREENSHOTS")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for this file only: Playwright's sync API keeps its asyncio loop marked as
    running in the main thread until it stops, and asyncio.run() in any later test file of the
    same process refuses to start under it."""
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, system: System) -> Iterator[Any]:
    context = browser.new_context(base_url=system.url, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors  # no script error on any page


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_health_then_every_page_from_the_navigation(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector("#services tr[data-service=alerts]")
    assert page.locator(".probe .up").count() == 2  # Kafka and the registry
    shot(page, "health")
    for label, heading in [
        ("Topics", "Topics"),
        ("Groups", "Consumer groups"),
        ("Schemas", "Schemas"),
        ("Catalog", "Catalog"),
        ("Trace", "Trace"),
        ("Dead letters", "Dead letters"),
        ("Health", "Health"),
    ]:
        page.click(f"header nav >> text={label}")
        assert page.locator("h1").first.inner_text() == heading


def test_avro_and_protobuf_values_decoded_in_the_page(page: Any, system: System) -> None:
    page.goto("/topics")
    page.click(f"#topics a:text-is('{system.avro_topic}')")
    page.click("nav.tabs >> text=Messages")
    page.select_option("#browse select[name=from]", "start")
    page.click("#browse button")
    first = page.locator("#page tr.record").first
    first.locator("summary").click()
    assert f"Avro · {system.avro_topic}-value v1" in first.inner_text()
    assert '"id": "p0"' in first.locator("pre.data").inner_text()
    page.goto(f"/topics/{system.protobuf_topic}/messages?from=start")
    row = page.locator("#page tr.record").first
    row.locator("summary").click()
    assert f"Protobuf · {system.protobuf_topic}-value v1" in row.inner_text()
    assert '"team": "blue"' in row.inner_text()
    shot(page, "messages-protobuf")


def test_filter_scan_runs_with_progress_and_shows_matches(page: Any, system: System) -> None:
    page.goto(f"/topics/{system.json_topic}/messages")
    page.click("text=Filter and search")
    page.fill("#scan-form input[name=filter]", 'value.status == "big" && value.order > 2500')
    page.click("#scan-form button")
    page.wait_for_selector("text=done (end)")
    assert page.locator(".scan .matched").inner_text() == "9"  # orders 2991 to 2999
    assert page.locator(".scan tr.record").count() == 9
    shot(page, "filter-scan")


def test_live_tail_shows_new_records_as_they_come(page: Any, system: System) -> None:
    page.goto(f"/topics/{TAIL_TOPIC}/messages")
    page.click("#tail-button")
    page.wait_for_selector("text=following from the end")
    page.wait_for_timeout(1000)  # the tail's consumer finds the end
    producer = Producer({"bootstrap.servers": system.broker.bootstrap})
    producer.produce(TAIL_TOPIC, value=b'{"live": "from the browser test"}')
    producer.flush(10)
    page.wait_for_selector("#live tr.record >> text=from the browser test")
    page.click("#tail-button")
    assert page.locator("#tail-button").inner_text() == "Live tail"


def test_produce_from_the_page_refuses_what_the_schema_refuses(page: Any, system: System) -> None:
    page.goto(f"/topics/{system.avro_topic}/produce")
    page.fill("#produce-form textarea[name=value]", '{"id": 1}')
    page.click("#produce-form button")
    page.wait_for_selector("#produced .error")
    assert "the Avro schema refuses it" in page.inner_text("#produced")
    page.fill("#produce-form input[name=key]", "from-browser")
    page.fill("#produce-form textarea[name=value]", '{"id": "b1", "amount": 9.5}')
    page.click("#produce-form button")
    page.wait_for_selector("#produced .notice")
    assert f"with Avro · {system.avro_topic}-value v1" in page.inner_text("#produced")
    page.click("#produced a")
    assert '"id": "b1"' in page.inner_text("#page")


def test_groups_show_lag_and_a_reset_dry_run(page: Any) -> None:
    page.goto("/groups")
    page.click("#groups a:text-is('balances')")
    assert page.locator("#members tr").count() >= 2  # a header and a member
    assert page.locator("#offsets tr").count() >= 2
    shot(page, "group")
    page.click("#reset-form button[value='0']")
    page.wait_for_selector("#reset-result .error")  # balances has members: refused, said why
    assert "active member(s)" in page.inner_text("#reset-result")


def test_schemas_diff_and_check(page: Any, system: System) -> None:
    page.goto("/schemas")
    page.click(f"#subjects a:text-is('{system.avro_topic}-value')")
    assert page.inner_text("#level") == "BACKWARD"
    page.fill(
        "#check-form textarea",
        '{"type": "record", "name": "Payment", "namespace": "finance", "fields": '
        '[{"name": "id", "type": "int"}]}',
    )
    page.click("#check-form button")
    page.wait_for_selector("#check-result .error")
    assert "not compatible" in page.inner_text("#check-result")
    shot(page, "schema")


def test_catalog_graph_links_services_and_events(page: Any) -> None:
    page.goto("/catalog")
    for name in ("transactions", "balances", "alerts", "notifier"):
        assert page.locator(f"svg.lineage a[data-node='s:{name}']").count() == 1
    assert page.locator("svg.lineage path.edge").count() >= 6
    shot(page, "catalog")
    page.click("svg.lineage a[data-node='s:balances']")
    assert page.locator("h1").inner_text() == "Service balances"
    page.go_back()
    page.click("#catalog-events a:text-is('finance.low-balance')")
    page.wait_for_selector("#example")
    assert "alerts" in page.inner_text("main")
    page.goto("/catalog")
    with page.expect_download() as download:
        page.click("#asyncapi")
    assert download.value.suggested_filename == "asyncapi.json"


def test_trace_from_a_records_correlation_id_across_three_services(
    page: Any, system: System
) -> None:
    page.goto("/topics/finance.low-balance/messages")
    row = page.locator("#page tr.record").first
    row.locator("summary").click()
    row.locator("table.attrs a", has_text=system.low_balance["ce_correlationid"]).click()
    page.wait_for_selector("#trace")
    services = page.locator("#trace tr.step td:nth-child(3)").all_inner_texts()
    assert {"transactions", "balances", "alerts"} <= set(services), services
    depths = [int(d) for d in page.locator("#trace tr.step").evaluate_all(
        "rows => rows.map(r => r.dataset.depth)")]  # fmt: skip
    assert depths[:4] == [0, 1, 2, 3]
    assert re.search(r"\d+ event\(s\)", page.inner_text("#trace-summary"))
    shot(page, "trace")


def test_dead_letters_listed_and_replayed_with_a_dry_run(page: Any) -> None:
    page.goto("/dlq")
    page.click("#dlqs a:text-is('finance.transaction-requests')")
    assert page.locator("#letters tr[data-where]").count() >= 1
    assert "ValidationError" in page.inner_text("#letters")
    page.click("text=Dry run: replay all")
    page.wait_for_selector("#replay-result .notice")
    assert "dry run: would replay" in page.inner_text("#replay-result")
    shot(page, "dead-letters")


def test_create_configure_and_delete_a_topic_from_the_pages(page: Any) -> None:
    page.goto("/topics")
    page.click("text=Create a topic")
    page.fill("details.box input[name=name]", "made-in-browser")
    page.fill("details.box input[name=partitions]", "2")
    page.click("details.box button")
    page.wait_for_selector("#create-result .notice")
    page.click("#create-result a")
    assert page.locator("#partitions tr").count() == 3
    page.fill("#configs input[name=config]", "retention.ms")
    page.fill("#configs input[name=value]", "123456")
    page.click("#configs button")
    page.wait_for_selector("#configs .notice")
    assert "123456" in page.inner_text("tr[data-config='retention.ms']")
    page.click("text=Delete this topic")
    page.fill("details.danger input[name=confirm]", "made-in-browser")
    page.click("details.danger button")
    page.wait_for_selector("#delete-result .notice")
    assert "deleted topic made-in-browser" in page.inner_text("#delete-result")
