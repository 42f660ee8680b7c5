"""Group commit: one fsync covers every append made before it started.

Appends happen on the event loop; an fsync runs in a worker thread (it releases the GIL) while
the loop keeps appending. A request that needs durability waits for the first fsync that
*starts* after its append, so one fsync acknowledges all requests that arrived while the
previous one ran. Under load that amortises the disk's flush latency over many requests.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from nerve.broker.log.log import PartitionLog

log = logging.getLogger("nerve.broker")


class GroupCommit:
    def __init__(self) -> None:
        self._dirty: set[PartitionLog] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._running = False
        # One thread: fsyncs run one round at a time, so a round never overtakes another.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerve-fsync")

    def mark_dirty(self, partition_log: PartitionLog) -> None:
        self._dirty.add(partition_log)

    def sync(self) -> asyncio.Future[None]:
        """A future that completes once everything appended so far is on disk."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        if not self._running:
            self._start_round(loop)
        return waiter

    def _start_round(self, loop: asyncio.AbstractEventLoop) -> None:
        logs, self._dirty = self._dirty, set()
        waiters, self._waiters = self._waiters, []
        self._running = True
        future = loop.run_in_executor(self._executor, _sync_all, logs)

        def finished(done: asyncio.Future[None]) -> None:
            self._running = False
            error = done.exception()
            if error is not None:
                log.error("fsync failed: %s", error)
            for waiter in waiters:
                if waiter.done():
                    continue
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
            if self._waiters:
                self._start_round(loop)

        future.add_done_callback(finished)

    def sync_now(self) -> None:
        """Blocking fsync of everything dirty (shutdown)."""
        logs, self._dirty = self._dirty, set()
        _sync_all(logs)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _sync_all(logs: set[PartitionLog]) -> None:
    for partition_log in logs:
        partition_log.sync()
