"""A service's own per-event work, without Kafka: the CloudEvents envelope read and written, and
``ServiceRunner._handle`` on a ready-made record (binary-mode headers as nerve writes them, a
small JSON value) whose handler returns one event to a producer that keeps nothing.

Each source tree is measured in a fresh process pinned to one CPU; ``--baseline`` measures
another checkout's ``src`` in the same run, alternating, and prints this tree's cost as a ratio
of it (below 1: cheaper). Figures are the best of ``--repeat`` timings of ``--number`` calls.

    python bench/envelope.py                              # this tree alone
    python bench/envelope.py --baseline ../main/src       # beside another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("read", "write", "handle", "handle-structured")


def measure(number: int, repeat: int) -> dict[str, float]:
    """Microseconds per call of each case, in this process's nerve."""
    import asyncio

    from confluent_kafka import Message

    from nerve.service import Event, Service, envelope
    from nerve.service.config import RunConfig
    from nerve.service.events import Meta
    from nerve.service.runtime import ServiceRunner, _drive

    class Tx(Event, topic="bench.tx", key="user"):
        id: str
        amount: float
        user: str

    class TxOut(Event, topic="bench.tx-out", key="user"):
        id: str
        cents: int
        user: str

    service = Service("bench-envelope")

    @service.on(Tx)
    async def transform(tx: Tx) -> TxOut:
        return TxOut(id=tx.id, cents=round(tx.amount * 100), user=tx.user)

    class Discard:
        def produce(self, *args: Any, **kwargs: Any) -> None:
            pass

    runner = ServiceRunner(service, RunConfig(bootstrap_servers="unused:1", registry_url=None))
    runner.producer = Discard()  # type: ignore[assignment]
    value = b'{"id":"tx-1","amount":12.5,"user":"u7"}'
    meta = Meta(source="/bench/preload", type="bench.tx")
    # As librdkafka hands them over: every header value as bytes.
    headers = [
        (name, item.encode() if isinstance(item, str) else item)
        for name, item in envelope.to_headers(meta)
    ]
    message = Message(
        topic="bench.tx", partition=0, offset=1, key=b"u7", value=value, headers=headers
    )
    read = getattr(envelope, "read", None)

    def read_case() -> Any:
        if read is not None:
            return read(headers, value)
        return envelope.from_headers(headers)

    def handle() -> None:
        done, _ = _drive(runner._handle(message))
        assert done, "the handler suspended"

    cases = {
        "read": read_case,
        "write": lambda: envelope.to_headers(meta),
        "handle": handle,
    }
    if hasattr(envelope, "to_structured"):
        value_s, headers_s = envelope.to_structured(meta, value)
        structured = Message(
            topic="bench.tx", partition=0, offset=2, key=b"u7", value=value_s, headers=headers_s
        )

        def handle_structured() -> None:
            done, _ = _drive(runner._handle(structured))
            assert done

        cases["handle-structured"] = handle_structured
    asyncio.set_event_loop(asyncio.new_event_loop())
    results = {}
    for name, case in cases.items():
        case()  # warm: first-call caches
        best = min(timeit.repeat(case, number=number, repeat=repeat))
        results[name] = best / number * 1e6
    assert runner.errors == 0
    return results


def child(tree: Path, cpu: int | None, number: int, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, str(Path(__file__)), "--child", "--number", str(number)]
    argv += ["--repeat", str(repeat)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's src directory")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree, alternating")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.number, args.repeat)))
        return 0
    cpu = None if args.no_pin else args.cpu
    trees = {"this tree": HERE.parent / "src"}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            runs[name].append(child(trees[name], cpu, args.number, args.repeat))
    medians = {
        name: {case: statistics.median(r[case] for r in rounds) for case in rounds[0]}
        for name, rounds in runs.items()
    }
    header = "| case | " + " | ".join(f"{name} (µs)" for name in trees)
    header += " | ratio |" if "baseline" in trees else " |"
    print(header)
    print("| --- " * (len(trees) + 1 + ("baseline" in trees)) + "|")
    for case in CASES:
        if case not in medians["this tree"]:
            continue
        cells = [f"{medians[name][case]:.2f}" if case in medians[name] else "-" for name in trees]
        row = f"| {case} | " + " | ".join(cells)
        if "baseline" in trees:
            base = medians["baseline"].get(case)
            row += f" | {medians['this tree'][case] / base:.3f}" if base else " | -"
        print(row + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
