"""``nerve completion bash|zsh|fish``: the shell code that completes nerve's commands and options.

argcomplete does the work: the shell calls ``nerve`` itself to complete, with ``_ARGCOMPLETE`` set
(``main`` hands those calls to it before parsing), so the completions always match the parser.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SHELLS = ("bash", "zsh", "fish")
HOW = {
    "bash": 'eval "$(nerve completion bash)"  # in ~/.bashrc',
    "zsh": 'eval "$(nerve completion zsh)"   # in ~/.zshrc, after compinit',
    "fish": "nerve completion fish | source  # in ~/.config/fish/config.fish",
}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "completion",
        help="print shell code that completes nerve commands (bash, zsh, fish)",
        description="Print the code that makes a shell complete nerve's commands and options. "
        + " ".join(f"{shell}: {line}." for shell, line in HOW.items()),
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["nerve"], shell=args.shell))
    return 0
