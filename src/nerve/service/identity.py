"""The transactional id an exactly-once service keeps in its state directory across restarts.

An exactly-once service with a new transactional id per process leaves a killed process's open
transaction to the broker's timeout: until then every ``read_committed`` reader of its output
(and changelogs) is stuck at that transaction (10 s after each crash, seen in
tests/streams/test_exactly_once.py and tests/service/test_delivery.py). Kafka Streams keeps
its process id in the state directory for the same reason: the restarted process takes the
same transactional id, and its ``init_transactions`` fences the dead one and aborts its
transaction at once.

The id is held under an exclusive lock for the process's life. A second process on the same
state directory (a replica started beside the first one) cannot take it and gets an id of its
own, so live replicas never fence each other; zombies are fenced by the group generation
(KIP-447) as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path
from typing import IO

log = logging.getLogger("nerve.service")


class TransactionalIdentity:
    """The transactional id of ``service`` on ``state_dir``: the kept one if this process
    could lock it, else a new one for this process only."""

    def __init__(self, service: str, state_dir: Path) -> None:
        self._held: IO[str] | None = None
        self.kept = False
        self.transactional_id = f"{service}-{uuid.uuid4().hex}"
        path = state_dir / service / "transactional.id"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
        except OSError as exc:
            log.warning("%s: cannot keep a transactional id in %s (%s)", service, path, exc)
            return
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.close()
            log.info(
                "%s: another process holds %s; this one takes a transactional id of its own",
                service,
                path,
            )
            return
        held.seek(0)
        kept = held.read().strip()
        if kept:
            self.transactional_id = kept
        else:
            held.write(self.transactional_id + "\n")
            held.flush()
            os.fsync(held.fileno())
        self._held = held
        self.kept = True

    def close(self) -> None:
        """Let another process take the id (the lock also goes with the process)."""
        if self._held is not None:
            self._held.close()
            self._held = None
