"""Consumer group benchmarks: how fast a group settles, and what idle members cost the broker.

1. settle: three confluent-kafka consumers subscribe to a 6-partition topic together; the clock
   runs until every partition is assigned. Then a fourth joins and the clock runs until the four
   share the partitions again. The first figure includes the broker's
   group.initial.rebalance.delay.ms (KIP-134), extended once when more members arrive within
   it, as Kafka does; the second is dominated by the clients' heartbeat.interval.ms, since the
   existing members learn of the rebalance at their next heartbeat.
2. heartbeats: 200 consumers in 20 groups of 10 (separate processes, pinned away from the
   broker) sit on an idle topic, heartbeating and long-polling fetches as real idle services
   do; once every group is stable the broker's CPU time is measured over a window.

    python bench/groups.py                       # spawn nerve, both parts
    python bench/groups.py --bootstrap HOST:PORT --broker-pid PID   # any broker (e.g. Kafka)

Targets (issue 3): the broker under 10% of one core with 200 heartbeating consumers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _broker import SpawnedBroker, pin_current_process

CPU_TARGET_PERCENT = 10.0


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


class Member:
    """A subscribed consumer polled by its own thread; records its current assignment."""

    def __init__(self, bootstrap: str, topic: str, group: str, heartbeat_ms: int | None) -> None:
        config: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
        }
        if heartbeat_ms is not None:
            config["heartbeat.interval.ms"] = heartbeat_ms
        self.consumer = Consumer(config)
        self.assigned: set[int] = set()
        self.topic = topic
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        def on_assign(_: Consumer, partitions: list) -> None:
            self.assigned = {p.partition for p in partitions}

        def on_revoke(_: Consumer, partitions: list) -> None:
            self.assigned = set()

        self.consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            self.consumer.poll(0.05)

    def close(self) -> None:
        self._running = False
        self._thread.join(10)
        self.consumer.close()


def wait_settled(members: list[Member], partitions: int, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        owned = sorted(p for m in members for p in m.assigned)
        if owned == list(range(partitions)) and all(m.assigned for m in members):
            return time.monotonic() - start
        time.sleep(0.005)
    raise RuntimeError(f"group did not settle within {timeout}s")


def settle_once(
    bootstrap: str, heartbeat_ms: int | None, join_after_s: float
) -> tuple[float, float]:
    topic = f"bench-settle-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"
    create_topic(bootstrap, topic, 6)
    members = [Member(bootstrap, topic, group, heartbeat_ms) for _ in range(3)]
    try:
        start = time.monotonic()
        for m in members:
            m.start()
        wait_settled(members, 6)
        initial = time.monotonic() - start
        # The members heartbeat in step after settling together; join at a known phase.
        time.sleep(join_after_s)
        joiner = Member(bootstrap, topic, group, heartbeat_ms)
        members.append(joiner)
        start = time.monotonic()
        joiner.start()
        wait_settled(members, 6)
        return initial, time.monotonic() - start
    finally:
        for m in members:
            m.close()


# -- heartbeats of many idle members -------------------------------------------------------


def worker_main(args: argparse.Namespace) -> None:
    """Child process: host ``--members`` consumers across the given groups until stdin closes."""
    consumers = []
    for group in args.worker_groups.split(","):
        for _ in range(args.members_per_group):
            c = Consumer(
                {
                    "bootstrap.servers": args.bootstrap,
                    "group.id": group,
                    "enable.auto.commit": False,
                }
            )
            c.subscribe([args.topic])
            consumers.append(c)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        for c in consumers:
            c.poll(0)
        time.sleep(0.1)
    for c in consumers:
        c.close()


def heartbeat_cpu(
    bootstrap: str, broker_pid: int, groups: int, members: int, window: float, client_cpu: int
) -> dict[str, float]:
    topic = f"bench-idle-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, members)
    names = [f"{topic}-g{i}" for i in range(groups)]
    processes = []
    per_process = 4
    for start in range(0, groups, per_process):
        argv = [
            sys.executable,
            __file__,
            "--worker",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--worker-groups",
            ",".join(names[start : start + per_process]),
            "--members-per-group",
            str(members),
        ]
        if client_cpu >= 0 and psutil.cpu_count() and client_cpu < psutil.cpu_count():
            argv = ["taskset", "-c", str(client_cpu), *argv]
        processes.append(
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    try:
        for p in processes:
            assert p.stdout is not None
            p.stdout.readline()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        started = time.monotonic()
        while True:
            described = admin.describe_consumer_groups(names)
            states = [f.result(30) for f in described.values()]
            if all(s.state.name == "STABLE" and len(s.members) == members for s in states):
                break
            if time.monotonic() - started > 300:
                raise RuntimeError("groups did not all become stable within 300s")
            time.sleep(1)
        settled_s = time.monotonic() - started
        broker = psutil.Process(broker_pid)
        before = broker.cpu_times()
        time.sleep(window)
        after = broker.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        return {
            "consumers": groups * members,
            "groups": groups,
            "settle_s": settled_s,
            "window_s": window,
            "broker_cpu_percent": 100 * used / window,
        }
    finally:
        for p in processes:
            if p.stdin is not None:
                p.stdin.close()
        for p in processes:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="use a running broker instead of spawning nerve")
    parser.add_argument("--broker-pid", type=int, help="its pid, to measure its CPU")
    parser.add_argument("--runs", type=int, default=3, help="settle runs (median is shown)")
    parser.add_argument(
        "--heartbeat-ms",
        type=int,
        default=None,
        help="clients' heartbeat.interval.ms in the settle part (default: librdkafka's, 3000)",
    )
    parser.add_argument(
        "--join-after", type=float, default=1.0, help="s between settling and the 4th joining"
    )
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--members", type=int, default=10, help="members per group")
    parser.add_argument("--window", type=float, default=30.0, help="CPU measuring window, s")
    parser.add_argument("--skip-settle", action="store_true")
    parser.add_argument("--skip-heartbeats", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--worker-groups", help=argparse.SUPPRESS)
    parser.add_argument("--members-per-group", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0

    pin_current_process(args.client_cpu)
    results: dict[str, object] = {}
    spawned = None
    if args.bootstrap:
        bootstrap, broker_pid = args.bootstrap, args.broker_pid
    else:
        spawned = SpawnedBroker(cpu=args.broker_cpu).__enter__()
        assert spawned.process is not None
        bootstrap, broker_pid = spawned.bootstrap, spawned.process.pid
        print(f"nerve broker on {bootstrap} (pid {broker_pid})")
    try:
        if not args.skip_settle:
            runs = [
                settle_once(bootstrap, args.heartbeat_ms, args.join_after) for _ in range(args.runs)
            ]
            initial = statistics.median(r[0] for r in runs)
            joined = statistics.median(r[1] for r in runs)
            results["settle"] = {"initial_s": initial, "after_join_s": joined, "runs": runs}
            hb = args.heartbeat_ms or 3000
            print(
                f"settle: 3 members from nothing {initial:.2f} s "
                f"(broker initial delay default 3.00 s); "
                f"a 4th joining {args.join_after:.1f} s later settles in {joined:.2f} s "
                f"(the others learn of it at their next heartbeat: interval {hb} ms)"
            )
        if not args.skip_heartbeats:
            if broker_pid is None:
                print("heartbeats: skipped, pass --broker-pid to measure a running broker")
            else:
                figures = heartbeat_cpu(
                    bootstrap,
                    broker_pid,
                    args.groups,
                    args.members,
                    args.window,
                    args.client_cpu,
                )
                results["heartbeats"] = figures
                verdict = "met" if figures["broker_cpu_percent"] < CPU_TARGET_PERCENT else "MISSED"
                print(
                    f"heartbeats: {figures['consumers']:.0f} consumers in "
                    f"{figures['groups']:.0f} groups, stable after {figures['settle_s']:.1f} s; "
                    f"broker CPU {figures['broker_cpu_percent']:.2f}% of one core over "
                    f"{figures['window_s']:.0f} s (target < {CPU_TARGET_PERCENT:.0f}%: {verdict})"
                )
        if spawned is not None:
            results["broker_peak_rss_mb"] = spawned.peak_rss_mb
    finally:
        if spawned is not None:
            spawned.__exit__(None, None, None)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
