"""An exactly-once service keeps its transactional id in its state directory, so a
restart fences the killed process at once; a second live process on the same directory never
takes the same id (it would fence a live replica)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from nerve.service.identity import TransactionalIdentity


def test_a_restarted_process_takes_the_id_its_predecessor_kept(tmp_path: Path) -> None:
    first = TransactionalIdentity("counts", tmp_path)
    kept = first.transactional_id
    assert first.kept and kept.startswith("counts-")
    first.close()
    again = TransactionalIdentity("counts", tmp_path)
    assert again.kept and again.transactional_id == kept
    again.close()
    other = TransactionalIdentity("other", tmp_path)
    assert other.transactional_id != kept
    other.close()


def test_a_second_live_process_on_the_same_directory_gets_an_id_of_its_own(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from nerve.service.identity import TransactionalIdentity
                held = TransactionalIdentity("counts", Path({str(tmp_path)!r}))
                print(held.transactional_id, flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        second = TransactionalIdentity("counts", tmp_path)
        assert not second.kept
        assert second.transactional_id != held
        second.close()
    finally:
        holder.communicate("", timeout=30)
    # Gone (killed or stopped), its id is the next process's.
    after = TransactionalIdentity("counts", tmp_path)
    assert after.kept and after.transactional_id == held
    after.close()
