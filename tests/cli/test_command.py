"""The nerve command itself: options in any position, --version, shell completion, help text,
one-line errors for bad or taken ports, and a start that imports nothing heavy."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve import __version__
from nerve.cli.main import build_parser
from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests._registry import RegistryProcess
from tests.conftest import TopicNameFactory


def nerve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_connection_options_work_before_and_after_the_command(
    shared_broker: BrokerProcess, shared_registry: RegistryProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic)
    before = nerve("-b", shared_broker.bootstrap, "topics", "list")
    after = nerve("topics", "list", "-b", shared_broker.bootstrap)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert topic in before.stdout and before.stdout == after.stdout
    # -X settings from both places apply (a bad one after the command is still seen).
    mixed = nerve("-X", "client.id=x", "topics", "list", "-b", shared_broker.bootstrap, "-X", "a=")
    assert mixed.returncode == 1 and "a" in mixed.stderr
    # The same for -r.
    url = shared_registry.url
    first = nerve("-r", url, "schemas", "list")
    last = nerve("schemas", "list", "-r", url)
    assert first.returncode == last.returncode == 0, first.stderr + last.stderr
    assert first.stdout == last.stdout
    # What follows the command wins over what came before it.
    wins = nerve("-b", "127.0.0.1:1", "topics", "list", "-b", shared_broker.bootstrap)
    assert wins.returncode == 0, wins.stderr


def test_version() -> None:
    done = nerve("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"nerve {__version__}")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_shell_code(shell: str) -> None:
    done = nerve("completion", shell)
    assert done.returncode == 0, done.stderr
    assert "nerve" in done.stdout and len(done.stdout.splitlines()) > 3


def test_completion_completes_commands_and_options(tmp_path: Path) -> None:
    # argcomplete's protocol, as the shell code uses it: nerve is run with the line so far.
    out = tmp_path / "completions"

    def complete(line: str) -> list[str]:
        env = dict(
            os.environ,
            _ARGCOMPLETE="1",
            _ARGCOMPLETE_SUPPRESS_SPACE="1",
            COMP_LINE=line,
            COMP_POINT=str(len(line)),
            _ARGCOMPLETE_STDOUT_FILENAME=str(out),
            _ARGCOMPLETE_IFS="\n",
        )
        done = subprocess.run(
            [sys.executable, "-m", "nerve"], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == 0, done.stderr
        return out.read_text().split("\n")

    assert "topics" in complete("nerve to")
    assert {"list", "describe", "create", "delete"} <= set(complete("nerve topics "))
    assert "--from-beginning" in complete("nerve consume orders --from")


def _actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_has_help_and_no_help_has_markup() -> None:
    parser = build_parser()
    texts = [parser.description or ""]
    for path, action in _actions(parser, "nerve"):
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{path} {name} has no help text"
        texts.append(action.help)
    for text in texts:
        assert "``" not in text and ":class:" not in text, text
    assert "``" not in parser.format_help()


def test_an_invalid_listen_port_is_a_usage_error() -> None:
    done = nerve("broker", "--listen", "127.0.0.1:99999")
    assert done.returncode == 2
    assert "a port is 0 to 65535, not '99999'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_metrics_port_is_one_line(tmp_path: Path) -> None:
    service = tmp_path / "svc.py"
    service.write_text("from nerve import Service\nsvc = Service('m')\n")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = nerve("run", str(service), "--no-registry", "--metrics-port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"nerve run: cannot serve metrics on port {port}: Address already in use"
    ]


def test_nerve_up_names_the_registry_port_when_that_one_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = nerve(
            "up", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
            "--registry-listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nerve up: cannot start the schema registry on 127.0.0.1:{port}: ")
    assert "Traceback" not in done.stderr


def test_a_command_starts_without_importing_the_heavy_parts() -> None:
    # What makes `nerve --help` or `nerve topics list` slow to start is importing the service
    # framework, the broker or asyncio for every command (timed in docs/performance.md).
    heavy = ["pydantic", "confluent_kafka", "asyncio", "nerve.broker", "nerve.service.events"]
    code = (
        "import sys; from nerve.cli.main import build_parser; build_parser(); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_listen_with_only_a_port_binds_loopback_and_says_so(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "broker", "--data-dir", str(tmp_path / "d"),
         "--listen", ":0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_metrics_port_alone_serves_loopback_only() -> None:
    from nerve.cli.client import local_address

    assert local_address("9100") == ("127.0.0.1", 9100)
    assert local_address(":9100") == ("127.0.0.1", 9100)
    assert local_address("0.0.0.0:9100") == ("0.0.0.0", 9100)


def test_nerve_up_serves_metrics_on_9404_by_default_and_the_servers_only_when_asked() -> None:
    parser = build_parser()
    assert parser.parse_args(["up"]).metrics_port == ("127.0.0.1", 9404)
    assert parser.parse_args(["up", "--metrics-port", "9500"]).metrics_port == ("127.0.0.1", 9500)
    assert parser.parse_args(["up", "--no-metrics"]).no_metrics
    assert parser.parse_args(["broker"]).metrics_port is None
    assert parser.parse_args(["registry"]).metrics_port is None
