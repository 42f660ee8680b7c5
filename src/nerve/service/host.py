"""Hosting services in a process: load them from files, run them until a signal, stop them
gracefully (the current batch finishes and its offsets commit)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
import sys
from pathlib import Path

from nerve.service.config import RunConfig
from nerve.service.observability import NULL_OBSERVER, Observer
from nerve.service.runtime import ServiceRunner
from nerve.service.service import Service

log = logging.getLogger("nerve.service")


def load_services(path: Path) -> list[Service]:
    """The Service objects a Python file defines at module level."""
    name = f"nerve_services_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))  # its sibling modules (shared events)
    spec.loader.exec_module(module)
    return [value for value in vars(module).values() if isinstance(value, Service)]


async def serve(
    services: list[Service],
    config: RunConfig,
    stop: asyncio.Event,
    observer: Observer = NULL_OBSERVER,
) -> None:
    """Start every service, run them until ``stop`` is set, then stop them all."""
    loop = asyncio.get_running_loop()
    runners = [ServiceRunner(service, config, observer) for service in services]
    for runner in runners:
        await loop.run_in_executor(None, runner.start)
    tasks = [asyncio.create_task(runner.run(stop), name=runner.service.name) for runner in runners]
    try:
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task in tasks and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in runners:
            await loop.run_in_executor(None, runner.close)
            log.info("service %s stopped, offsets committed", runner.service.name)


def run_forever(
    services: list[Service], config: RunConfig, observer: Observer = NULL_OBSERVER
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(services, config, stop, observer)

    asyncio.run(main())
