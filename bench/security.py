"""What TLS, SASL and ACLs cost on produce and consume, as ratios to PLAINTEXT on the same
broker in the same run, for nerve and for Apache Kafka configured the same way.

Each broker (pinned to core 0; the client runs on core 1) has five listeners: PLAINTEXT,
SASL_PLAINTEXT (SCRAM-SHA-512), SSL, SASL_SSL (SCRAM-SHA-512 over TLS) and, on a second
broker with StandardAuthorizer and 10,000 ACLs loaded (on other topics and principals, plus
the bench user's own), SASL_PLAINTEXT again: the cost of checking ACLs. Cases are
``produce_consume.py``'s (acks=all, incompressible values): MB/s, median of ``--repeat``.

    python bench/security.py [--quick] [--repeat 3] [--no-kafka]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from confluent_kafka.admin import (  # noqa: E402
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from tests._broker import BrokerProcess  # noqa: E402
from tests._certs import TestCA, ssl_listener_configs  # noqa: E402
from tests._kafka import KAFKA_VERSION, KafkaProcess  # noqa: E402

import produce_consume as pc  # noqa: E402
from _broker import pin_current_process  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
LISTENERS = {"SASL_PLAINTEXT": "SASL_PLAINTEXT", "SSL": "SSL", "SASL_SSL": "SASL_SSL"}
ACLS = 10_000
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
}


def broker_configs(ca: TestCA, server: Any) -> dict[str, str]:
    return {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
        **ssl_listener_configs(ca, server, "none"),
    }


def client_configs(ca: TestCA) -> dict[str, dict[str, Any]]:
    sasl = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER, "sasl.password": PASSWORD}
    tls = {"ssl.ca.location": str(ca.ca)}
    return {
        "PLAINTEXT": {},
        "SASL_PLAINTEXT": {"security.protocol": "SASL_PLAINTEXT", **sasl},
        "SSL": {"security.protocol": "SSL", **tls},
        "SASL_SSL": {"security.protocol": "SASL_SSL", **sasl, **tls},
    }


def prepare(plaintext: str, acls: bool) -> None:
    admin = AdminClient({"bootstrap.servers": plaintext, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), PASSWORD.encode()
    )
    admin.alter_user_scram_credentials([upsert])[USER].result(60)
    if not acls:
        return
    mine = [
        AclBinding(ResourceType.TOPIC, "bench-", ResourcePatternType.PREFIXED, f"User:{USER}",
                   "*", op, AclPermissionType.ALLOW)
        for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)
    ] + [
        AclBinding(ResourceType.GROUP, "nerve-bench-", ResourcePatternType.PREFIXED, f"User:{USER}",
                   "*", AclOperation.READ, AclPermissionType.ALLOW)
    ]  # fmt: skip
    others = [
        AclBinding(ResourceType.TOPIC, f"team-{i % 500}-topic-{i}",
                   ResourcePatternType.PREFIXED if i % 4 == 0 else ResourcePatternType.LITERAL,
                   f"User:service-{i % 700}", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        for i in range(ACLS - len(mine))
    ]  # fmt: skip
    bindings = mine + others
    for start in range(0, len(bindings), 1000):
        for future in admin.create_acls(bindings[start : start + 1000]).values():
            future.result(120)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run(
    address: str,
    plaintext: str,
    client: dict[str, Any],
    spec: pc.CaseSpec,
    broker: psutil.Process,
) -> tuple[float, float, float, float]:
    """One case over one listener: the topic is made over PLAINTEXT, the clients use
    ``client``'s security settings. MB/s and the broker's CPU ms per MiB, produce and
    consume: on a shared machine the CPU figures are the steadier."""
    topic = f"bench-{spec.msg_size}b-{spec.partitions}p-{time.monotonic_ns()}"
    pc.create_topic(plaintext, topic, spec.partitions)
    saved = dict(pc.PRODUCER_CONFIG), dict(pc.CONSUMER_CONFIG)
    pc.PRODUCER_CONFIG.update(client)
    pc.CONSUMER_CONFIG.update(client)
    try:
        before = _cpu(broker)
        produced = pc.produce_phase(address, topic, spec, stall_timeout_s=60)
        middle = _cpu(broker)
        consumed = pc.consume_phase(address, topic, spec, stall_timeout_s=60)
        after = _cpu(broker)
    finally:
        pc.PRODUCER_CONFIG.clear()
        pc.PRODUCER_CONFIG.update(saved[0])
        pc.CONSUMER_CONFIG.clear()
        pc.CONSUMER_CONFIG.update(saved[1])
    mib = produced.bytes / pc.MIB
    return (
        produced.mb_per_s,
        consumed.mb_per_s,
        1000 * (middle - before) / mib,
        1000 * (after - middle) / mib,
    )


class PinnedBroker(BrokerProcess):
    loop = "asyncio"  # or uvloop: --loop

    def command(self, port: int) -> list[str]:
        cmd = super().command(port)
        at = cmd.index("nerve") + 1
        return ["taskset", "-c", "0", *cmd[:at], "--loop", self.loop, *cmd[at:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small volumes (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="nerve's event loop"
    )
    args = parser.parse_args()
    PinnedBroker.loop = args.loop
    pin_current_process(1)
    volumes = pc.QUICK_MB if args.quick else {1024: 100.0, 100: 25.0}
    specs = [pc.CaseSpec(1024, 1, volumes[1024]), pc.CaseSpec(100, 8, volumes[100])]
    root = Path(tempfile.mkdtemp(prefix="nerve-bench-security-"))
    ca = TestCA(root / "certs")
    server = ca.issue("server", "CN=localhost", server=True)
    clients = client_configs(ca)
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    brokers = ["nerve"] + ([] if args.no_kafka else ["kafka"])
    for name in brokers:
        for with_acls in (False, True):
            configs = {**broker_configs(ca, server), **(AUTHORIZER if with_acls else {})}
            data = root / f"{name}-{'acls' if with_acls else 'open'}"
            if name == "nerve":
                listeners = "PLAINTEXT://127.0.0.1:0," + ",".join(
                    f"{n}://127.0.0.1:0" for n in LISTENERS
                )
                proc: Any = PinnedBroker(data, configs={"listeners": listeners, **configs})
                proc.start()
                addresses = proc.listeners
                plaintext = addresses["PLAINTEXT"]
            else:
                proc = KafkaProcess(data, configs=configs, listeners=LISTENERS, cpu=0)
                proc.start()
                plaintext = proc.bootstrap
                addresses = {"PLAINTEXT": plaintext, **proc.listener_addresses}
            process = psutil.Process(proc.pid)
            try:
                prepare(plaintext, with_acls)
                kinds = ["SASL_PLAINTEXT"] if with_acls else list(clients)
                for _ in range(args.repeat):
                    for kind in kinds:
                        label = f"{kind} + {ACLS:,} ACLs" if with_acls else kind
                        for spec in specs:
                            figures = run(addresses[kind], plaintext, clients[kind], spec, process)
                            results.setdefault((name, label, spec.name), []).append(figures)
                            print(f"{name:6} {label:28} {spec.name:10} produce "
                                  f"{figures[0]:7.1f} MB/s {figures[2]:6.1f} ms/MiB consume "
                                  f"{figures[1]:7.1f} MB/s {figures[3]:6.1f} ms/MiB",
                                  file=sys.stderr, flush=True)  # fmt: skip
            finally:
                if name == "nerve":
                    proc.close()
                else:
                    proc.remove()
    print(f"\nnerve vs Apache Kafka {KAFKA_VERSION}, median of {args.repeat}: MB/s, the broker's "
          "CPU ms per MiB, and each as a ratio to PLAINTEXT on the same broker (throughput: "
          "higher is better; CPU: lower is)\n")  # fmt: skip
    print("| broker | listener | case | produce MB/s | ratio | CPU ms/MiB | ratio "
          "| consume MB/s | ratio | CPU ms/MiB | ratio |")  # fmt: skip
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (name, label, case), runs in results.items():
        base = results[(name, "PLAINTEXT", case)]
        cells = []
        for k in (0, 2, 1, 3):
            value = statistics.median(r[k] for r in runs)
            reference = statistics.median(r[k] for r in base)
            cells += [f"{value:.1f}", f"{value / reference:.2f}"]
        print(f"| {name} | {label} | {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
