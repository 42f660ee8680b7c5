"""``nerve demo finance``: the platform, the five services as separate processes, a workload,
and either a live terminal view (until Ctrl-C) or a check that exits 0 only if the system got
everything right while one of its services was killed and restarted mid-stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Consumer, Producer

from nerve.demo.finance import workload
from nerve.demo.finance.events import (
    BalanceChanged,
    FraudSuspected,
    LowBalance,
    TransactionRecorded,
    TransactionRejected,
    TransactionRequested,
)
from nerve.demo.process import ServiceProcess
from nerve.service import envelope
from nerve.service.events import Event
from nerve.testing import Platform

HERE = Path(__file__).parent
SERVICES = ("transactions", "balances", "alerts", "notifier", "fraud")
TOPICS = (
    TransactionRequested.topic,
    TransactionRecorded.topic,
    BalanceChanged.topic,
    LowBalance.topic,
    FraudSuspected.topic,
    TransactionRejected.topic,
)


def send(producer: Producer, event: Event) -> None:
    meta = event.meta
    meta.source, meta.type = "/nerve/demo/workload", event.event_type
    producer.produce(
        event.topic,
        value=event.__pydantic_serializer__.to_json(event),
        key=event.record_key(),
        headers=envelope.to_headers(meta),
    )


@dataclass
class Observed:
    """What the demo's watcher has read from the system's topics so far."""

    counts: Counter[str] = field(default_factory=Counter)
    balances: dict[str, Decimal] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    alert_ids: Counter[str] = field(default_factory=Counter)
    fraud: dict[str, int] = field(default_factory=dict)  # account -> debits of its last alert
    fraud_alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (account, reason)
    rejected: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    rejected_ids: set[str] = field(default_factory=set)


class Watcher:
    """Reads every topic of the system (read_committed) into an Observed, from the beginning:
    what it counts is what the topics hold, also for a run on the data of an earlier one."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"nerve-demo-watch-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 0,
            }
        )
        self.consumer.subscribe(list(TOPICS))
        self.seen = Observed()

    def poll(self, seconds: float) -> Observed:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.consumer.consume(1000, timeout=0.05):
                if message.error() is not None or message.value() is None:
                    continue
                self._apply(message.topic() or "", message.value() or b"{}")
        return self.seen

    def _apply(self, topic: str, value: bytes) -> None:
        seen = self.seen
        seen.counts[topic] += 1
        body = json.loads(value)
        if topic == BalanceChanged.topic:
            seen.balances[body["account_id"]] = Decimal(str(body["balance"]))
            seen.users[body["account_id"]] = body["user_id"]
        elif topic == LowBalance.topic:
            seen.alert_ids[body["transaction_id"]] += 1
            seen.alerts.appendleft(f"{body['email']}: {body['account_id']} at {body['balance']}")
        elif topic == FraudSuspected.topic:
            seen.fraud[body["account_id"]] = body["debits"]
            seen.fraud_alerts[(body["account_id"], body.get("reason", "burst"))] += 1
        elif topic == TransactionRejected.topic:
            seen.rejected_ids.add(body["transaction_id"])
            seen.rejected.appendleft(f"{body['account_id']}: {body['reason']}")

    def close(self) -> None:
        self.consumer.close()


CONSOLE_PORT = 8080


def _start_console(
    platform: Platform, logs: Path, env: dict[str, str]
) -> subprocess.Popen[bytes] | None:
    """The web console on :8080 beside the live demo, in a process of its own (its reads must
    not slow the services down); a port already taken is said, and the demo runs without."""
    log_path = logs / "console.log"
    before = log_path.stat().st_size if log_path.exists() else 0  # earlier runs' lines
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nerve", "console", "-b", platform.bootstrap,
             "-r", platform.registry_url or "", "--port", str(CONSOLE_PORT)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        if b"console on" in log_path.read_bytes()[before:]:
            print(f"console on http://127.0.0.1:{CONSOLE_PORT}")
            return proc
        time.sleep(0.1)
    said = log_path.read_bytes()[before:].decode(errors="replace").strip().splitlines()
    tail = said[-1:] or ["no output"]
    print(f"the console did not start ({tail[0]}); the demo runs without it")
    if proc.poll() is None:
        proc.terminate()
    return None


def _mail(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def run(check: bool, data_dir: Path | None, users: int, count: int, rate: float) -> int:
    own_dir = None
    if data_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="nerve-demo-") if check else None
        data_dir = Path(own_dir.name) if own_dir else Path(".nerve/demo")
    if (data_dir / "platform").exists() and not (data_dir / "state").exists():
        # Its services kept their state in their events' topics; the streams services start
        # from their own changelogs, empty here, at the offsets the old ones committed.
        print(
            f"{data_dir} holds the data of a demo from before its services ran on streams: "
            f"balances start from zero there; remove {data_dir} for a fresh run"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    mail = data_dir / "mail"
    env = dict(os.environ, NERVE_DEMO_MAIL_DIR=str(mail))
    # Live: the usual ports, so kcat, the nerve command and serializers can look in.
    port, registry_port = (0, 0) if check else (9092, 8081)
    try:
        with Platform(data_dir / "platform", port=port, registry_port=registry_port) as platform:
            print(f"platform: Kafka on {platform.bootstrap}, registry on {platform.registry_url}")
            producer = Producer(
                {
                    "bootstrap.servers": platform.bootstrap,
                    "linger.ms": 5,
                    "log_level": 0,
                    # As nerve services and Java clients place keys: user.profile is then
                    # co-partitioned with what alerts joins it with, and a transaction
                    # request lands in the partition its recorded transaction will.
                    "partitioner": "murmur2_random",
                }
            )
            for profile in workload.profiles(users):
                send(producer, profile)
            producer.flush(30)
            state = data_dir / "state"
            services = {
                name: ServiceProcess(name, HERE / f"{name}.py", platform, logs, state, env)
                for name in SERVICES
            }
            for service in services.values():
                service.start()
            console = None if check else _start_console(platform, logs, env)
            watcher = Watcher(platform.bootstrap)
            try:
                if check:
                    return _check(producer, services, watcher, mail, users, count)
                return _live(producer, services, watcher, mail, users, rate, data_dir / "clock")
            finally:
                watcher.close()
                for service in services.values():
                    service.stop()
                if console is not None and console.poll() is None:
                    console.terminate()
                    console.wait(10)
    finally:
        if own_dir is not None:
            own_dir.cleanup()
        elif any(logs.iterdir()):  # services ran
            print(f"service logs in {logs}, emails in {mail}")


def _check(
    producer: Producer,
    services: dict[str, ServiceProcess],
    watcher: Watcher,
    mail: Path,
    users: int,
    count: int,
) -> int:
    requests = workload.transactions(users, count)
    want = workload.expected(requests)
    half = len(requests) // 2
    started = time.monotonic()
    for request in requests[:half]:
        send(producer, request)
    producer.flush(30)
    # Kill the ledger mid-stream, while it works through the first half, then bring it back.
    seen = watcher.poll(0.1)
    while seen.counts[BalanceChanged.topic] < half // 4 and time.monotonic() - started < 60:
        seen = watcher.poll(0.2)
    services["balances"].kill()
    print(f"killed balances (SIGKILL) after {seen.counts[BalanceChanged.topic]} balance changes")
    for request in requests[half:]:
        send(producer, request)
    producer.flush(30)
    services["balances"].start()
    print("restarted balances")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = watcher.poll(0.5)
        if _dead(services):
            break
        done = (
            seen.balances == want.balances
            and seen.rejected_ids >= want.rejected_ids
            and {p.stem for p in _mail(mail)} >= want.emails
            and set(seen.fraud_alerts) >= _fraud(want)
        )
        if done:
            watcher.poll(2.0)  # anything late (a duplicate) shows up now
            break
    failures = [
        f"{name} exited on its own:\n{services[name].log_tail()}" for name in _dead(services)
    ]
    if seen.balances != want.balances:
        wrong = {
            a: (seen.balances.get(a), b)
            for a, b in want.balances.items()
            if seen.balances.get(a) != b
        }
        failures.append(f"balances differ from the sum of their transactions: {wrong}")
    if seen.counts[BalanceChanged.topic] != want.applied:
        failures.append(
            f"{seen.counts[BalanceChanged.topic]} balance changes for {want.applied} "
            "applied transactions (exactly-once broken)"
        )
    if seen.rejected_ids != want.rejected_ids:
        failures.append(
            f"rejected transactions: {len(want.rejected_ids - seen.rejected_ids)} missing, "
            f"{len(seen.rejected_ids - want.rejected_ids)} unexpected"
        )
    sent = {p.stem for p in _mail(mail)}
    if sent != want.emails:
        failures.append(
            f"emails: {len(want.emails - sent)} missing, {len(sent - want.emails)} unexpected"
        )
    twice = [t for t, n in seen.alert_ids.items() if n > 1]
    if twice:
        failures.append(f"{len(twice)} alerts raised more than once")
    flagged = set(seen.fraud_alerts)
    if flagged != _fraud(want):
        failures.append(
            f"fraud: {sorted(_fraud(want) - flagged)} not flagged, "
            f"{sorted(flagged - _fraud(want))} flagged wrongly"
        )
    repeated = sorted(k for k, n in seen.fraud_alerts.items() if n > 1)
    if repeated:
        failures.append(f"fraud flagged more than once: {repeated}")
    elapsed = time.monotonic() - started
    print(
        f"{len(requests)} transactions ({want.rejected} refused: malformed or overdrawing), "
        f"{len(want.balances)} accounts, "
        f"{len(sent)} emails, fraud flagged: "
        f"{', '.join(f'{a} ({r})' for a, r in sorted(flagged)) or 'none'}, in {elapsed:.1f} s"
    )
    for failure in failures:
        print(f"FAIL: {failure}")
    print("check passed" if not failures else "check FAILED")
    return 0 if not failures else 1


def _fraud(want: workload.Expected) -> set[tuple[str, str]]:
    """The fraud alerts the workload must cause: (account, reason), one each."""
    return {(a, "burst") for a in want.fraud_accounts} | {
        (a, "card-testing") for a in want.card_testing_accounts
    }


def _dead(services: dict[str, ServiceProcess], restarted: str | None = None) -> list[str]:
    """Services that exited on their own (the one being restarted aside)."""
    return [
        name
        for name, service in services.items()
        if name != restarted and service.proc is not None and service.proc.poll() is not None
    ]


def _resume(clock: Path) -> datetime:
    """Where a live run's simulated time starts: after the last run's, else at the start."""
    try:
        return datetime.fromisoformat(clock.read_text().strip()) + timedelta(hours=1)
    except (OSError, ValueError):
        return workload.START


def _live(
    producer: Producer,
    services: dict[str, ServiceProcess],
    watcher: Watcher,
    mail: Path,
    users: int,
    rate: float,
    clock: Path,
) -> int:
    from rich.console import Group
    from rich.live import Live
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    # A new seed each run: a second live run on the same data must not repeat transaction ids.
    # Simulated time goes on from where the last run on this data stopped: fraud's windows
    # and stream time live in Kafka, and a transaction from before them would be late.
    start = _resume(clock)
    requests = workload.stream(users, seed=time.time_ns(), start=start)
    last = {"at": start}
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    def view(seen: Observed, sent: int) -> Group:
        flow = Table(title="events", expand=True)
        flow.add_column("topic")
        flow.add_column("events", justify="right")
        for topic in TOPICS:
            flow.add_row(topic, str(seen.counts[topic]))
        accounts = Table(title="balances", expand=True)
        for column in ("account", "user", "balance"):
            accounts.add_column(column, justify="right" if column == "balance" else "left")
        for account in sorted(seen.balances, key=lambda a: int(a.split("-")[1])):
            balance = seen.balances[account]
            style = "red" if balance < workload.THRESHOLD else "green"
            accounts.add_row(account, seen.users.get(account, ""), Text(str(balance), style=style))
        alerts = "\n".join(seen.alerts) or "none yet"
        rejected = "\n".join(seen.rejected) or "none yet"
        fraud = ", ".join(f"{a} ({n} debits)" for a, n in sorted(seen.fraud.items())) or "none"
        health = Table(title="services", expand=True)
        health.add_column("service")
        health.add_column("state")
        for name, service in services.items():
            state = service.status()
            health.add_row(name, Text(state, style="green" if state == "running" else "red"))
        return Group(
            health,
            flow,
            accounts,
            Panel(alerts, title=f"low-balance alerts ({sent} emails in {mail})"),
            Panel(rejected, title=f"rejected transactions ({len(seen.rejected_ids)})"),
            Panel(fraud, title="fraud suspected"),
            "[dim]Ctrl-C to stop[/]",
        )

    interval = 1.0 / rate
    sent_requests = 0
    with Live(view(watcher.seen, 0), refresh_per_second=4, screen=False) as live:
        next_send = time.monotonic()
        while not stop["now"]:
            now = time.monotonic()
            while next_send <= now:
                request = next(requests)
                send(producer, request)
                last["at"] = request.at
                sent_requests += 1
                next_send += interval
                if sent_requests % 100 == 0:  # a killed demo resumes near where it was
                    clock.write_text(request.at.isoformat())
            producer.poll(0)
            seen = watcher.poll(0.2)
            live.update(view(seen, len(_mail(mail))))
    producer.flush(10)
    clock.write_text(last["at"].isoformat())
    print(f"sent {sent_requests} transactions; stopping services")
    # Ctrl-C reached the services too: those that stopped cleanly obeyed it.
    dead = [name for name, service in services.items() if service.failed()]
    for name in dead:
        print(f"{name} failed; the end of its log:\n{services[name].log_tail()}")
    return 1 if dead else 0
