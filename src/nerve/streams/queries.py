"""Reading a service's tables by key: inside the service (``table.get(key)``) and over HTTP
(``nerve run --http-port``: ``GET /tables/<name>/<key>``), answered by the replica that owns
the key's partition.

Each replica says which partitions it owns, and where its HTTP server is, in the compacted
``_nerve_replicas`` topic (one record per replica, rewritten at every assignment, deleted when
it stops), as Kafka Streams' instances advertise ``application.server`` to each other. A query
for a key another replica owns is forwarded to it; the answer says which replica gave it.

A table is queryable by its name: the ``name=`` given to ``count``/``reduce``/``aggregate``/
``to_table`` (or the generated one, listed by ``GET /tables``). Keys in URLs are text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from nerve.streams.partitioner import partition_for
from nerve.streams.records import Windowed
from nerve.streams.serde import encode_key, to_jsonable

if TYPE_CHECKING:
    from nerve.streams.running import StreamsPart

log = logging.getLogger("nerve.streams")

REPLICAS_TOPIC = "_nerve_replicas"
# Node kinds whose store is a table worth reading, and how its rows are kept.
_KV = {"aggregate", "table"}
_WINDOWS = {"window", "sliding-window"}
_SESSIONS = {"session-window"}


class NotLocal(LookupError):
    """The key belongs to a partition another replica owns (``owner``: its HTTP address, if
    known)."""

    def __init__(self, table: str, key: Any, owner: str | None) -> None:
        where = f"replica at {owner}" if owner else "another replica (not known yet)"
        super().__init__(f"{table}[{key!r}] is kept by {where}")
        self.owner = owner


class Queries:
    """The queryable tables of one running service."""

    def __init__(self, part: StreamsPart, endpoint: str | None) -> None:
        self.part = part
        self.service = part.topology.service
        self.endpoint = endpoint
        self.instance = f"{self.service}/{uuid.uuid4().hex[:12]}"
        self.tables: dict[str, tuple[Any, Any]] = {}  # name -> (sub-topology, node)
        for sub in part.topology.subs:
            for node in sub.nodes:
                if node.kind in _KV | _WINDOWS | _SESSIONS and node.stores:
                    (store,) = list(node.stores)
                    self.tables[store] = (sub, node)
        self.replicas: Any = None
        self._producer: Any = None

    # -- local reads -----------------------------------------------------------------------

    def partition_of(self, name: str, key: Any) -> tuple[Any, int]:
        sub, _ = self._table(name)
        partitions = self.part.partitions.get(sub.index, 1)
        return sub, partition_for(encode_key(key), partitions)

    def _table(self, name: str) -> tuple[Any, Any]:
        found = self.tables.get(name)
        if found is None:
            known = ", ".join(sorted(self.tables)) or "none"
            raise KeyError(f"{self.service} has no table {name!r} (tables: {known})")
        return found

    def local(self, name: str, key: Any) -> tuple[bool, Any]:
        """(owned here, the row or None)."""
        sub, node = self._table(name)
        _, partition = self.partition_of(name, key)
        engine = self.part.engine
        task = engine.tasks.get((sub.index, partition))
        if task is None:
            # Keys written by a producer that does not place keys by murmur2 may sit
            # elsewhere: any local task of the sub-topology that has the key answers.
            for (index, _), other in list(engine.tasks.items()):
                if index == sub.index and key in other.state.stores[name]:
                    return True, self._row(node, key, other.state.stores[name].get(key))
            return False, None
        held = task.state.stores[name].get(key)
        return True, None if held is None else self._row(node, key, held)

    def get(self, name: str, key: Any) -> Any:
        """The row of ``key`` (None if absent) if this replica owns it, else NotLocal."""
        owned, row = self.local(name, key)
        if not owned:
            sub, partition = self.partition_of(name, key)
            raise NotLocal(name, key, self.owner(sub, partition))
        return row

    @staticmethod
    def _row(node: Any, key: Any, held: Any) -> Any:
        if node.kind in _KV:
            return held[0]
        if node.kind in _WINDOWS:
            size = node.windows.size if node.kind == "window" else node.size
            return [
                Windowed(key, start, start + size, agg) for start, (agg, _) in sorted(held.items())
            ]
        return [Windowed(key, start, end, agg) for start, end, agg in held]

    # -- replicas --------------------------------------------------------------------------

    def start(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        from nerve.service.runtime import ensure_topics
        from nerve.service.tables import Table

        ensure_topics(AdminClient(config), {REPLICAS_TOPIC: 1}, compact=True)
        self._producer = Producer({**config, "linger.ms": 0})
        self.replicas = Table(REPLICAS_TOPIC)
        self.replicas.start(config)

    def announce(self) -> None:
        """Which partitions this replica owns now, and where it answers."""
        if self._producer is None:
            return
        owned: dict[str, list[int]] = {}
        for index, partition in self.part.engine.tasks:
            owned.setdefault(str(index), []).append(partition)
        record = {
            "service": self.service,
            "endpoint": self.endpoint,
            "pid": os.getpid(),
            "tasks": owned,
            "at": int(time.time() * 1000),
        }
        self._producer.produce(REPLICAS_TOPIC, key=self.instance.encode(), value=json.dumps(record))
        self._producer.flush(5)

    def owner(self, sub: Any, partition: int) -> str | None:
        """The endpoint of the replica that announced this partition last."""
        if self.replicas is None:
            return None
        best: tuple[int, str] | None = None
        for _, record in self.replicas.items():
            if not isinstance(record, dict) or record.get("service") != self.service:
                continue
            if partition in record.get("tasks", {}).get(str(sub.index), []):
                endpoint = record.get("endpoint")
                if endpoint and (best is None or record.get("at", 0) > best[0]):
                    best = (record.get("at", 0), endpoint)
        return None if best is None else best[1]

    def stop(self) -> None:
        if self._producer is not None:
            self._producer.produce(REPLICAS_TOPIC, key=self.instance.encode(), value=None)
            self._producer.flush(5)
            self._producer = None
        if self.replicas is not None:
            self.replicas.stop()

    # -- HTTP ------------------------------------------------------------------------------

    def answer(self, name: str, key: str, *, forwarded: bool) -> tuple[int, dict[str, Any]]:
        try:
            owned, row = self.local(name, key)
        except KeyError as exc:
            return 404, {"error": str(exc.args[0])}
        if owned:
            if row is None:
                return 404, {"error": f"no row for {key!r} in {name}", "replica": self.endpoint}
            return 200, {
                "service": self.service,
                "table": name,
                "key": key,
                "value": _json(row),
                "replica": self.endpoint,
            }
        sub, partition = self.partition_of(name, key)
        owner = self.owner(sub, partition)
        if forwarded or owner is None or owner == self.endpoint:
            return 503, {
                "error": f"partition {partition} of {name} has no known owner yet (a rebalance?)",
                "replica": self.endpoint,
            }
        url = f"http://{owner}/services/{self.service}/tables/{_quote(name)}/{_quote(key)}"
        try:
            with urllib.request.urlopen(url + "?forwarded=1", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError as exc:
            return 502, {"error": f"the owner at {owner} did not answer: {exc}"}


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _json(row: Any) -> Any:
    if isinstance(row, list):
        return [
            {"start": w.start, "end": w.end, "value": to_jsonable(w.value)}
            if isinstance(w, Windowed)
            else to_jsonable(w)
            for w in row
        ]
    return to_jsonable(row)


class QueryServer:
    """One HTTP server per process, for every service it runs."""

    def __init__(self, host: str, port: int) -> None:
        self.services: dict[str, Queries] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server.route(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="nerve-http").start()

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"{host}:{self.port}"

    def route(self, path: str) -> tuple[int, dict[str, Any]]:
        parsed = urllib.parse.urlsplit(path)
        forwarded = "forwarded=1" in parsed.query
        parts = [urllib.parse.unquote(p) for p in parsed.path.strip("/").split("/")]
        if parts[:1] == ["services"] and len(parts) >= 2:
            queries = self.services.get(parts[1])
            if queries is None:
                return 404, {"error": f"no service {parts[1]!r} here"}
            candidates = [queries]
            parts = parts[2:]
        else:
            candidates = list(self.services.values())
        if parts == ["tables"]:
            return 200, {
                "tables": [
                    {
                        "service": q.service,
                        "name": name,
                        "url": f"/services/{q.service}/tables/{name}/<key>",
                    }
                    for q in candidates
                    for name in sorted(q.tables)
                ]
            }
        if len(parts) == 3 and parts[0] == "tables":
            name, key = parts[1], parts[2]
            having = [q for q in candidates if name in q.tables]
            if not having:
                known = ", ".join(sorted(n for q in candidates for n in q.tables)) or "none"
                return 404, {"error": f"no table {name!r} (tables: {known})"}
            if len(having) > 1:
                names = ", ".join(q.service for q in having)
                return 409, {"error": f"{name!r} is a table of several services ({names}): "
                             "ask /services/<service>/tables/..."}  # fmt: skip
            return having[0].answer(name, key, forwarded=forwarded)
        return 404, {"error": "GET /tables or /tables/<name>/<key>"}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_servers: dict[tuple[str, int], QueryServer] = {}
_lock = threading.Lock()


def server_for(host: str, port: int) -> QueryServer:
    with _lock:
        found = _servers.get((host, port))
        if found is None:
            found = _servers[(host, port)] = QueryServer(host, port)
            log.info("tables served at http://%s/tables", found.endpoint)
        return found
