"""Producer ids: unique for the life of the data directory, handed out in persisted blocks.

Kafka's controller hands brokers blocks of ids through its metadata log; one broker needs only a
file. The end of the current block is written (fsynced) before any id from it is handed out,
so a restart continues after it and never reuses an id, at the cost of skipping the rest of a
block.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / "meta" / "producer-ids.json"
        self._next = 0
        self._block_end = 0
        with contextlib.suppress(OSError, ValueError, KeyError):
            self._block_end = self._next = int(json.loads(self._path.read_text())["block_end"])

    def next_id(self) -> int:
        if self._next >= self._block_end:
            self._reserve(self._next + BLOCK_SIZE)
        producer_id = self._next
        self._next += 1
        return producer_id

    def _reserve(self, block_end: int) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump({"version": 1, "block_end": block_end}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise  # no id from an unwritten block is ever handed out
        self._block_end = block_end
