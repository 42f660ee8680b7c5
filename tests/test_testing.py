"""nerve.testing: its documented example runs as written (so the docs say what it returns)."""

from __future__ import annotations

import textwrap

import nerve.testing


def test_the_module_example_runs_as_documented() -> None:
    doc = nerve.testing.__doc__ or ""
    # The example: the indented lines after the first paragraph, up to the next plain one.
    lines = doc.split("\n\n", 1)[1].splitlines()
    example = "\n".join(lines[: next(i for i, x in enumerate(lines) if x.startswith("``"))])
    assert "platform.expect" in example
    namespace: dict[str, object] = {"Platform": nerve.testing.Platform}
    exec(compile(textwrap.dedent(example), "nerve.testing example", "exec"), namespace)
