"""nerve's streams doing what the reference application (tests/streams/reference) does, one
service per scenario, for the differential rig (tests/streams/_reference.py)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from nerve import Service
from nerve.service.config import RunConfig
from nerve.service.host import serve
from nerve.streams import hopping, session, sliding, tumbling
from tests.streams.scenarios import SCENARIOS

WINDOW = timedelta(seconds=10)
HOP = timedelta(seconds=5)
GRACE = timedelta(seconds=2)
GAP = timedelta(seconds=5)
WITHIN = timedelta(seconds=5)


def before_bar(value: str | None) -> str | None:
    if value is None:
        return None
    return value.split("|", 1)[0]


def after_bar(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else ""


def windowed_key(_key: Any, w: Any) -> str:
    return f"{w.key}@{w.start}-{w.end}"


def count_text(w: Any) -> str:
    return str(w.value)


def text_join(left: str | None, right: str | None) -> str:
    """Kafka Streams' scenarios write ``L+R``; Java writes a missing side as ``null``."""
    return f"{'null' if left is None else left}+{'null' if right is None else right}"


def _stream_table(service: Service, t: Callable[[str], str], left: bool) -> None:
    table = service.stream(t("right"), time="record").to_table()
    stream = service.stream(t("left"), time="record")
    joined = stream.left_join(table, text_join) if left else stream.join(table, text_join)
    joined.to(t("out"))


def _stream_stream(service: Service, t: Callable[[str], str], how: str) -> None:
    left = service.stream(t("left"), time="record")
    right = service.stream(t("right"), time="record")
    join = {"inner": left.join, "left": left.left_join, "outer": left.outer_join}[how]
    join(right, text_join, within=WITHIN, grace=GRACE).to(t("out"))


def _table_table(service: Service, t: Callable[[str], str], how: str) -> None:
    left = service.stream(t("left"), time="record").to_table()
    right = service.stream(t("right"), time="record").to_table()
    join = {"inner": left.join, "left": left.left_join, "outer": left.outer_join}[how]
    join(right, text_join).to(t("out"))


def _foreign_key(service: Service, t: Callable[[str], str], left: bool) -> None:
    rows = service.stream(t("left"), time="record").to_table()
    refs = service.stream(t("right"), time="record").to_table()

    def joiner(value: str, right: str | None) -> str:
        return text_join(after_bar(value), right)

    join = rows.left_join if left else rows.join
    join(refs, joiner, foreign_key=before_bar).to(t("out"))


def _windowed(service: Service, topic: str, out: str, windows: Any, final: bool) -> None:
    counts = (
        service.stream(topic, time="record")
        .group_by_key()
        .window(windows, grace=GRACE, emit="final" if final else "update")
        .count()
    )
    counts.to(out, key=windowed_key, value=count_text)


BUILDERS: dict[str, Callable[[Service, Callable[[str], str]], None]] = {
    "tumbling": lambda s, t: _windowed(s, t("in"), t("out"), tumbling(WINDOW), False),
    "tumbling-final": lambda s, t: _windowed(s, t("in"), t("out"), tumbling(WINDOW), True),
    "hopping": lambda s, t: _windowed(s, t("in"), t("out"), hopping(WINDOW, HOP), False),
    "sliding": lambda s, t: _windowed(s, t("in"), t("out"), sliding(WINDOW), False),
    "session": lambda s, t: _windowed(s, t("in"), t("out"), session(GAP), False),
    "aggregate": lambda s, t: (
        s.stream(t("in"), time="record")
        .group_by_key()
        .reduce(lambda total, value: str(int(total) + int(value)))
        .to(t("out"))
    ),
    "group-by": lambda s, t: (
        s.stream(t("in"), time="record").group_by(before_bar).count().to(t("out"), value=str)
    ),
}

JOIN_BUILDERS: dict[str, Callable[[Service, Callable[[str], str]], None]] = {
    "stream-table-inner": lambda s, t: _stream_table(s, t, False),
    "stream-table-left": lambda s, t: _stream_table(s, t, True),
    "stream-stream-inner": lambda s, t: _stream_stream(s, t, "inner"),
    "stream-stream-left": lambda s, t: _stream_stream(s, t, "left"),
    "stream-stream-outer": lambda s, t: _stream_stream(s, t, "outer"),
    "table-table-inner": lambda s, t: _table_table(s, t, "inner"),
    "table-table-left": lambda s, t: _table_table(s, t, "left"),
    "table-table-outer": lambda s, t: _table_table(s, t, "outer"),
    "fk-join": lambda s, t: _foreign_key(s, t, False),
    "fk-join-left": lambda s, t: _foreign_key(s, t, True),
}
BUILDERS.update(JOIN_BUILDERS)
ALL_BUILDERS = BUILDERS


def build(name: str, service_name: str, prefix: str, *, exactly_once: bool) -> Service:
    service = Service(service_name, exactly_once=exactly_once)
    scenario = SCENARIOS[name]
    ALL_BUILDERS[name](service, lambda suffix: scenario.topic(suffix, prefix))
    return service


class NerveStreamsApp:
    """The scenarios' services run in a thread of this process (a restart runs them again
    with an empty state directory: everything restored from the changelogs)."""

    def __init__(
        self,
        scenarios: Sequence[str],
        bootstrap: str,
        *,
        workdir: Path,
        exactly_once: bool = False,
        topic_prefix: str = "",
    ) -> None:
        self.scenarios = list(scenarios)
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.exactly_once = exactly_once
        self.topic_prefix = topic_prefix
        self.application_id = f"nerve-{uuid.uuid4().hex[:8]}"
        self.starts = 0
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._started = threading.Event()

    @property
    def group_ids(self) -> list[str]:
        return [f"{self.application_id}-{name}" for name in self.scenarios]

    def start(self) -> None:
        self.starts += 1
        services = [
            build(name, group, self.topic_prefix, exactly_once=self.exactly_once)
            for name, group in zip(self.scenarios, self.group_ids, strict=True)
        ]
        config = RunConfig(
            bootstrap_servers=self.bootstrap,
            registry_url=None,
            state_dir=str(self.workdir / f"{self.application_id}-state-{self.starts}"),
            client_config={"auto.commit.interval.ms": 100},
        )
        self._failure = None
        self._started.clear()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop = asyncio.Event()
            try:
                self._started.set()
                loop.run_until_complete(serve(services, config, self._stop))
            except BaseException as exc:
                self._failure = exc
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._started.wait(30)

    def check(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"nerve streams failed: {self._failure!r}") from self._failure
        if self._thread is not None and not self._thread.is_alive():
            raise RuntimeError("nerve streams stopped")

    def stop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._failure is not None:
            raise RuntimeError(f"nerve streams failed: {self._failure!r}") from self._failure
