"""The broker process: the listener, one protocol object per connection, background tasks.

This is the only module that touches sockets. A connection decodes every request as it arrives
and starts its handler at once, so a producer's pipelined requests append back to back and share
one group-commit fsync; responses still leave in request order, as Kafka clients require.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import Any

from nerve.broker.config import BrokerConfig
from nerve.broker.dynamic_configs import DynamicConfigs
from nerve.broker.group_commit import GroupCommit
from nerve.broker.groups.coordinator import GroupCoordinator
from nerve.broker.handlers import HANDLERS, api_versions
from nerve.broker.metrics import BrokerMetrics
from nerve.broker.security import enforce, gate
from nerve.broker.security.listeners import Listener
from nerve.broker.security.session import Session
from nerve.broker.security.state import BrokerSecurity
from nerve.broker.topics import TopicManager
from nerve.broker.txn.coordinator import TransactionCoordinator
from nerve.protocol import codec
from nerve.protocol.framing import FrameDecoder, FrameTooLargeError, RequestMemoryPool

log = logging.getLogger("nerve.broker")

# A client that pipelines this many unanswered requests is paused until we catch up.
_MAX_PENDING = 64
# How often connections are checked for idleness and for requests that take too long to arrive.
_SWEEP_INTERVAL_S = 1.0
# When a stop that takes a while first says what it is waiting for, then how often.
_STOP_FIRST_REPORT_S = 1.0
_STOP_REPORT_S = 3.0


class Broker:
    """Owns the topics, the group commit and the listener of one broker process."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.dynamic_configs = DynamicConfigs(config)
        self.topics = TopicManager(config)
        self.group_commit = GroupCommit()
        self.groups = GroupCoordinator(self)
        self.transactions = TransactionCoordinator(self)
        self.metrics = BrokerMetrics(self)
        self.cluster_id = ""
        # Host of the client whose request a handler is running (handlers run synchronously
        # to their first await, so this is theirs to read); DescribeGroups reports it.
        self.client_host = ""
        # The session of the connection whose request a handler is running (as client_host):
        # who the client is, and the listener it came in on.
        self.session: Session | None = None
        # Listeners, TLS, SASL, credentials and the authorizer (raises SecurityError).
        self.security = BrokerSecurity(self)
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.connections: set[KafkaConnection] = set()
        limit = config.queued_max_request_bytes
        self.request_pool = RequestMemoryPool(limit) if limit > 0 else None

    @property
    def node_id(self) -> int:
        return self.config.node_id

    async def start(self) -> tuple[str, int]:
        """Recover the logs, then listen; returns the bound address."""
        from nerve.broker.cluster import load_or_create_cluster_id

        self.cluster_id = load_or_create_cluster_id(self.config.data_dir, self.config.node_id)
        self.dynamic_configs.open()
        _raise_open_file_limit()
        self.topics.open()
        self.groups.start()
        self.transactions.start()
        self.security.open()
        loop = asyncio.get_running_loop()
        for listener in self.security.listeners:
            server = await loop.create_server(
                lambda listener=listener: KafkaConnection(self, listener),
                listener.host or None,
                listener.port,
                reuse_address=True,
                backlog=1024,
                ssl=self.security.contexts.get(listener.name),
            )
            self._servers.append(server)
            bound_host, bound_port = server.sockets[0].getsockname()[:2]
            listener.bound(bound_host, bound_port)
        self.config.bound_listeners = [
            (l.name, l.protocol, l.host, l.port, l.advertised_host, l.advertised_port)
            for l in self.security.listeners  # noqa: E741
        ]
        first = self.security.listeners[0]
        host, port = self._servers[0].sockets[0].getsockname()[:2]
        self.config.host, self.config.port = first.host or host, port
        if first.advertised_host:
            self.config.advertised_host = first.advertised_host
        self.config.advertised_port = first.advertised_port
        self._tasks.append(asyncio.create_task(self._retention_loop()))
        self._tasks.append(asyncio.create_task(self._cleaner_loop()))
        self._tasks.append(asyncio.create_task(self._connection_sweeper()))
        return host, port

    async def stop(self) -> None:
        """Stop accepting, finish, flush and close every log (indexes written).

        The flushing runs in a thread while this coroutine says, every few seconds, what it
        is still waiting for (a topic change in progress, fsyncs of so many partitions).
        """
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close()
        await self.groups.stop()
        await self.transactions.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        progress: list[int] = []

        def flush_and_close() -> None:
            self.group_commit.sync_now()
            self.group_commit.close()
            self.topics.close(progress)

        started = time.monotonic()
        closing = asyncio.get_running_loop().run_in_executor(None, flush_and_close)
        wait = _STOP_FIRST_REPORT_S
        while True:
            done, _ = await asyncio.wait({closing}, timeout=wait)
            wait = _STOP_REPORT_S
            if done:
                break
            if not progress:
                waiting = "the topic change in progress and the last fsync"
            else:
                waiting = f"partition logs to close ({progress[0]} of {progress[1]} done)"
            log.info("stopping for %.0f s: waiting for %s", time.monotonic() - started, waiting)
        closing.result()
        log.info("stopped in %.1f s", time.monotonic() - started)

    @property
    def advertised(self) -> tuple[str, int]:
        """The endpoint clients reach this broker at on the listener the request came in on."""
        session = self.session
        if session is None:
            return self.config.advertised
        listener = session.listener
        return listener.advertised_host or self.config.advertised[0], listener.advertised_port

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    async def _retention_loop(self) -> None:
        interval = self.config.log_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = self.now_ms()
            for partition in list(self.topics.all_partitions()):
                try:
                    deleted = partition.log.enforce_retention(now)
                except Exception:
                    log.exception(
                        "retention failed on %s-%d", partition.topic.name, partition.index
                    )
                    continue
                partition.log.producers.expire(now, self.config.producer_id_expiration_ms)
                if deleted:
                    log.info(
                        "retention deleted %d segment(s) of %s-%d",
                        deleted,
                        partition.topic.name,
                        partition.index,
                    )

    async def _connection_sweeper(self) -> None:
        """Close connections idle for connections.max.idle.ms, or whose current request has
        taken longer than socket.request.receive.timeout.ms to arrive (slow loris)."""
        loop = asyncio.get_running_loop()
        idle_s = self.config.connections_max_idle_ms / 1000
        receive_s = self.config.socket_request_receive_timeout_ms / 1000
        while True:
            await asyncio.sleep(min(_SWEEP_INTERVAL_S, idle_s, receive_s))
            now = loop.time()
            for connection in list(self.connections):
                connection.sweep(now, idle_s, receive_s)

    async def _cleaner_loop(self) -> None:
        while True:
            # Read each round: log.cleaner.backoff.ms can be altered at runtime.
            await asyncio.sleep(self.config.log_cleaner_backoff_ms / 1000)
            now = self.now_ms()
            for partition in list(self.topics.all_partitions()):
                if "compact" not in partition.topic.log_config.cleanup_policy:
                    continue
                try:
                    partition.log.compact(now)
                except Exception:
                    log.exception(
                        "compaction failed on %s-%d", partition.topic.name, partition.index
                    )


def _raise_open_file_limit() -> None:
    """Every partition keeps a file open, every client a socket: take the hard limit, as the
    JVM does for Kafka (-XX:+MaxFDLimit), instead of the often small soft one."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit from %d to %d: %s", soft, hard, exc)
            return
        log.info("open file limit raised from %d to %d", soft, hard)


class KafkaConnection(asyncio.BufferedProtocol):
    """One client connection: frames in, handlers started, responses out in order."""

    def __init__(self, broker: Broker, listener: Listener) -> None:
        self.broker = broker
        self.listener = listener
        self.session: Session = Session(listener, "")
        self.decoder = FrameDecoder(broker.config.socket_request_max_bytes, broker.request_pool)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.client_host = ""
        # Responses not yet written, in request order: bytes when ready, else a future.
        self.pending: collections.deque[asyncio.Future[memoryview | None]] = collections.deque()
        self._reading_paused = False
        self._writing_paused = False
        # Set while a failed authentication's refusal waits: nothing more is read or handled.
        self._refusing = False
        self._loop = asyncio.get_running_loop()
        self.last_active = self._loop.time()  # last bytes read or response written
        self.request_started: float | None = None  # when the incomplete request began arriving

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.client_host = f"/{peer[0]}" if peer else ""
        self.broker.connections.add(self)
        try:
            self.session = self.broker.security.new_session(self.listener, transport)
        except PermissionError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        if not self.session.authenticated:
            # Before authentication a frame is a SASL token: Kafka's sasl.server.max.receive.size
            # keeps an unauthenticated peer from making the broker buffer 100 MB requests.
            self.decoder.max_frame_bytes = min(
                self.decoder.max_frame_bytes, self.broker.security.max_receive_size(self.listener)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.connections.discard(self)
        self.decoder.close()
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        self.transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        now = self._loop.time()
        was_empty = self.decoder.buffered == 0
        try:
            frames = self.decoder.buffer_updated(nbytes)
        except FrameTooLargeError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        self.last_active = now
        if frames or was_empty:
            self.request_started = now if self.decoder.buffered else None
        received = time.perf_counter() if frames else 0.0  # the loop's clock may be coarse
        for frame in frames:
            if self.transport is None or self._refusing:
                return
            self._handle_frame(frame, received)
        if self.decoder.waiting_for_memory and self.broker.request_pool is not None:
            self.broker.request_pool.wait(self.decoder, self._memory_released)
        self._update_reading()

    def _memory_released(self) -> None:
        if self.transport is None:
            return
        if not self.decoder.retry():
            assert self.broker.request_pool is not None
            self.broker.request_pool.wait(self.decoder, self._memory_released)
            return
        self._update_reading()

    def sweep(self, now: float, idle_s: float, receive_s: float) -> None:
        """Close this connection if it is idle or its request is too slow to arrive."""
        if self.transport is None:
            return
        if self._reading_paused:
            # We stopped reading, not the peer: its clocks restart when we read again.
            self.last_active = now
            if self.request_started is not None:
                self.request_started = now
            return
        if self.request_started is not None and now - self.request_started > receive_s:
            log.warning(
                "closing connection from %s: a request started %.0f s ago is still incomplete "
                "(%d bytes so far; socket.request.receive.timeout.ms is %d)",
                self.peer,
                now - self.request_started,
                self.decoder.buffered,
                receive_s * 1000,
            )
            self.close()
        elif self.pending or self.request_started is not None:
            self.last_active = now
        elif now - self.last_active > idle_s:
            log.info(
                "closing connection from %s: idle for more than connections.max.idle.ms (%d)",
                self.peer,
                idle_s * 1000,
            )
            self.close()
        elif now - self.last_active > _SWEEP_INTERVAL_S:
            self.decoder.trim()

    # -- requests --------------------------------------------------------------------------

    def _handle_frame(self, frame: bytes | memoryview, received: float) -> None:
        session = self.session
        if session.raw_tokens:
            self._raw_sasl_token(frame)
            return
        try:
            header, pos = codec.decode_header(frame)
        except codec.RequestDecodeError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        if session.gated:
            refusal = gate.refusal(session, header.api_key)
            if refusal is not None:
                log.warning("closing connection from %s (client %s): %s",
                            self.peer, header.client_id, refusal)  # fmt: skip
                self.close()
                return
        handler = HANDLERS.get(header.api_key)
        if handler is None or not handler.min_version <= header.api_version <= handler.max_version:
            if header.api_key == codec.API_VERSIONS_KEY:
                # Kafka answers an ApiVersions it cannot parse with v0 and the versions it
                # has, so that the client can retry with one it supports (KIP-511).
                self._respond_now(api_versions.unsupported_version_response(header))
                return
            log.warning(
                "closing connection from %s (client %s): unsupported api key %d version %d",
                self.peer,
                header.client_id,
                header.api_key,
                header.api_version,
            )
            self.close()
            return
        try:
            body = codec.decode_body(header, frame, pos)
        except codec.RequestDecodeError as exc:
            log.warning(
                "closing connection from %s (client %s): api key %d v%d: %s (starts %s)",
                self.peer,
                header.client_id,
                header.api_key,
                header.api_version,
                exc,
                frame[:48].hex(),
            )
            self.close()
            return
        self.broker.client_host = self.client_host
        self.broker.session = session
        try:
            if self.broker.security.authorizer is None:
                result = handler.handle(self.broker, header, body)
            else:
                result = enforce.handle(self.broker, session, header, body, handler.handle)
            if result is not None and not inspect.isawaitable(result):
                result = codec.encode_response(header, result)
        except Exception:
            log.exception(
                "handler for api key %d v%d failed; closing connection from %s",
                header.api_key,
                header.api_version,
                self.peer,
            )
            self.close()
            return
        if isinstance(result, memoryview):
            if session.failed_authentication:
                self.broker.metrics.request_done(
                    header.api_key, header.api_version, time.perf_counter() - received
                )
                self._refuse_after_delay(result)
                return
            self._respond_now(result)
        elif result is not None:
            self._respond_later(header, result, received)
            if session.close_after_response:
                self.close()  # the transport writes what it holds first
            return
        self.broker.metrics.request_done(
            header.api_key, header.api_version, time.perf_counter() - received
        )
        if session.close_after_response:
            self.close()  # the transport writes what it holds first
        elif header.api_key == gate.SASL_AUTHENTICATE and session.authenticated:
            self.decoder.max_frame_bytes = self.broker.config.socket_request_max_bytes

    def _raw_sasl_token(self, frame: bytes | memoryview) -> None:
        """After SaslHandshake v0 a SASL token arrives bare and its answer leaves bare."""
        reply = gate.raw_token(self.broker, self.session, bytes(frame))
        if reply is None:
            log.warning("closing connection from %s: SASL authentication failed", self.peer)
            self._refuse_after_delay(None)
            return
        self._respond_now(memoryview(len(reply).to_bytes(4, "big") + reply))
        gate.schedule_expiry(self.broker, self.session, self._loop)
        if self.session.authenticated:
            self.decoder.max_frame_bytes = self.broker.config.socket_request_max_bytes

    def _refuse_after_delay(self, response: memoryview | None) -> None:
        """Kafka's connection.failed.authentication.delay.ms: a failed authentication's
        refusal leaves, and the connection closes, that much later, which slows a password
        guesser to one try per delay and connection. A timer: the loop and the other
        connections go on meanwhile; this one reads nothing more."""
        delay = self.broker.security.failed_authentication_delay_s
        if delay <= 0:
            if response is not None:
                self._respond_now(response)
            self.close()
            return
        self._refusing = True
        self._update_reading()

        def refuse() -> None:
            if self.transport is None:
                return
            if response is not None:
                self._respond_now(response)
            self.close()  # the transport writes what it holds first

        self._loop.call_later(delay, refuse)

    def _respond_now(self, data: memoryview) -> None:
        if not self.pending:
            if self.transport is not None:
                self.transport.write(data)
            return
        future: asyncio.Future[memoryview | None] = asyncio.get_running_loop().create_future()
        future.set_result(data)
        self.pending.append(future)

    def _respond_later(
        self, header: codec.RequestHeader, result: Awaitable[Any], received: float
    ) -> None:
        async def answer() -> memoryview | None:
            body = await result
            encoded = None if body is None else codec.encode_response(header, body)
            self.broker.metrics.request_done(
                header.api_key, header.api_version, time.perf_counter() - received
            )
            return encoded

        task = asyncio.ensure_future(answer())
        self.pending.append(task)
        task.add_done_callback(self._flush_ready)

    def _flush_ready(self, _: object = None) -> None:
        while self.pending and self.pending[0].done():
            future = self.pending.popleft()
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                log.error("request from %s failed: %r; closing connection", self.peer, error)
                self.close()
                return
            data = future.result()
            if data is not None and self.transport is not None:
                self.transport.write(data)
                self.last_active = self._loop.time()
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None:
            return
        should_pause = (
            self._refusing
            or self._writing_paused
            or len(self.pending) >= _MAX_PENDING
            or self.decoder.waiting_for_memory
        )
        if should_pause and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not should_pause and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
