"""The console's routes: each page gathers what it shows in a worker thread (the Kafka and
registry clients block) and renders a Jinja2 template; forms post back with htmx and get a
fragment. Writes pass one gate (``_write``): refused with 403 under ``--read-only``, and only
taken from the console's own pages (an htmx request from the same origin), so another site
open in the browser cannot make it write."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from nerve.console import (
    dead_letters,
    groups,
    health,
    lineage,
    messages,
    metrics,
    schemas,
    topics,
    trace,
)
from nerve.console.auth import Login, LoginMiddleware
from nerve.console.cluster import Cluster, ConsoleError
from nerve.console.config import ConsoleConfig
from nerve.console.decoding import Decoder
from nerve.console.filters import FilterError, compile_filter
from nerve.console.scans import Scans, key_partitions
from nerve.registry.auth import from_config
from nerve.security.client_settings import without_userinfo

log = logging.getLogger("nerve.console")
HERE = Path(__file__).parent


class Console:
    """The state one console keeps: its clients and a few bounded in-memory histories."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.cluster = Cluster(config)
        self.decoder = Decoder(self.cluster)
        self.scans = Scans(self.cluster, self.decoder)
        self.rates = topics.Rates()
        self.lag = groups.LagHistory()
        self.catalog = lineage.Catalog(self.cluster)

    def close(self) -> None:
        self.cluster.close()


class Consoles:
    """The console of each logged-in user when users reach Kafka as themselves
    (``kafka.principal=user``): their own clients, so the broker's ACLs decide which topics,
    groups and records each is shown, and their own histories; else one for everyone. The
    least recently used of more than ``limit`` users' is closed."""

    def __init__(self, config: ConsoleConfig, limit: int = 32) -> None:
        self.config, self.limit = config, limit
        self._shared: Console | None = None if config.sends_user else Console(config)
        self._users: OrderedDict[Login, Console] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, request: Request) -> Console:
        if self._shared is not None:
            return self._shared
        user: Login = request.scope["nerve.user"]  # set by LoginMiddleware
        closing = None
        with self._lock:
            found = self._users.get(user)
            if found is None:
                config = (
                    self.config.as_bearer(user.name, user.secret)
                    if user.bearer
                    else self.config.as_user(user.name, user.secret)
                )
                found = self._users[user] = Console(config)
                if len(self._users) > self.limit:
                    closing = self._users.popitem(last=False)[1]
            self._users.move_to_end(user)
        if closing is not None:
            closing.close()
        return found

    def close(self) -> None:
        with self._lock:
            every = [*self._users.values(), *([self._shared] if self._shared else [])]
            self._users.clear()
        for console in every:
            console.close()


def _int(value: str | None, default: int | None = None) -> int | None:
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConsoleError(f"a number, not {value!r}") from None


def build_app(config: ConsoleConfig) -> Starlette:
    """The console's application; raises AuthConfigError or ConsoleConfigError (both
    ValueErrors) for login settings or a users file that cannot be used."""
    auth = from_config(config)
    config.check_logins()
    consoles = Consoles(config)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals["read_only"] = config.read_only
    env.globals["bootstrap"] = config.bootstrap_servers
    env.globals["registry_url"] = without_userinfo(config.registry_url)
    env.filters["number"] = lambda n: "-" if n is None else f"{n:,.0f}"
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
    env.filters["ms"] = _ms_text
    env.filters["bytes"] = _bytes_text

    def page(name: str, request: Request, status: int = 200, **context: Any) -> Response:
        fragment = request.headers.get("HX-Request") == "true" and not request.headers.get(
            "HX-Boosted"
        )
        user: Login | None = request.scope.get("nerve.user")
        return templates.TemplateResponse(
            request,
            name,
            {
                "fragment": fragment,
                "user": user.name if user else None,
                # Basic logins are remembered by the browser: /logout makes it forget them.
                "logout": user is not None and not user.bearer,
                **context,
            },
            status_code=status,
        )

    def error(request: Request, exc: ConsoleError) -> Response:
        return page("error.html", request, exc.status, message=exc.message)

    Handler = Callable[[Request], Awaitable[Response]]

    def route(work: Callable[[Request], Awaitable[Response]]) -> Handler:
        async def handle(request: Request) -> Response:
            try:
                return await work(request)
            except ConsoleError as exc:
                return error(request, exc)
            except FilterError as exc:
                return error(request, ConsoleError(f"filter: {exc}", 400))

        return handle

    def write(work: Handler) -> Handler:
        async def gated(request: Request) -> Response:
            if config.read_only:
                return error(request, ConsoleError("this console is read-only (--read-only)", 403))
            if request.headers.get("HX-Request") != "true" or not _same_origin(request):
                return error(
                    request, ConsoleError("writes are taken from the console's pages only", 403)
                )
            return await work(request)

        return route(gated)

    # -- health --------------------------------------------------------------------------

    async def home(request: Request) -> Response:
        console = consoles.get(request)
        found = await run_in_threadpool(health.check, console.cluster, console.catalog)
        return page("health.html", request, health=found)

    # -- topics --------------------------------------------------------------------------

    async def topic_list(request: Request) -> Response:
        console = consoles.get(request)
        show = request.query_params.get("internal") == "1"
        rows = await run_in_threadpool(topics.list_topics, console.cluster, console.rates, show)
        url = config.broker_metrics_url
        sizes = url is not None
        if url is not None:
            try:
                found = await run_in_threadpool(metrics.broker, url)
            except ConsoleError:
                sizes = False
            else:
                for row in rows:
                    row.size = found.log_bytes.get(row.name)
        return page("topics.html", request, topics=rows, internal=show, sizes=sizes)

    async def topic_detail(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        detail = await run_in_threadpool(topics.describe, console.cluster, name)
        return page("topic.html", request, topic=detail, tab="overview")

    async def topic_create(request: Request) -> Response:
        console = consoles.get(request)
        form = await request.form()
        name = str(form.get("name", ""))
        configs = topics.parse_configs(str(form.get("configs", "")))
        await run_in_threadpool(
            topics.create,
            console.cluster,
            name,
            _int(str(form.get("partitions", "1")), 1) or 1,
            _int(str(form.get("replication", "-1")), -1) or -1,
            configs,
        )
        return page("notice.html", request, message=f"created topic {name}", href=f"/topics/{name}")

    async def topic_config(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        form = await request.form()
        config_name = str(form.get("config", "")).strip()
        value = str(form.get("value", ""))
        if not config_name:
            raise ConsoleError("which config?")
        reset = form.get("reset") == "1"
        await run_in_threadpool(
            topics.alter_config, console.cluster, name, config_name, None if reset else value
        )
        detail = await run_in_threadpool(topics.describe, console.cluster, name)
        said = f"{config_name} reset to its default" if reset else f"{config_name} = {value}"
        return page("topic_configs.html", request, topic=detail, notice=said)

    async def topic_delete(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        form = await request.form()
        await run_in_threadpool(topics.delete, console.cluster, name, str(form.get("confirm", "")))
        return page("notice.html", request, message=f"deleted topic {name}", href="/topics")

    # -- messages ------------------------------------------------------------------------

    async def topic_messages(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        q = request.query_params
        partition = _int(q.get("partition"))
        mode = q.get("from", "end")
        limit = min(_int(q.get("limit"), config.page_records) or 1, config.max_page_records)
        at = messages.parse_time(q["time"]) if mode == "time" and q.get("time") else None
        key = q.get("key", "")
        metadata = await run_in_threadpool(console.cluster.topic, name)
        result = await run_in_threadpool(
            messages.browse,
            console.cluster,
            console.decoder,
            name,
            partition,
            mode,
            limit,
            _int(q.get("offset")),
            at,
        )
        key_hint = key_partitions(key.encode(), len(metadata.partitions)) if key else None
        return page(
            "messages.html",
            request,
            page=result,
            topic=name,
            partitions=sorted(metadata.partitions),
            q=q,
            key=key,
            key_hint=key_hint,
            tab="messages",
        )

    async def scan_start(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        form = await request.form()
        text = str(form.get("filter", ""))
        key = str(form.get("key", ""))
        if key and not text.strip():
            text = f"key == {json.dumps(key)}"
        flt = compile_filter(text)
        metadata = await run_in_threadpool(console.cluster.topic, name)
        partition = _int(str(form.get("partition", "")))
        partitions = sorted(metadata.partitions)
        if partition is not None:
            partitions = [partition]
        elif key:  # a key search reads only the partitions the key can be in
            partitions = key_partitions(key.encode(), len(metadata.partitions))
        marks = await run_in_threadpool(console.cluster.watermarks, name, partitions)
        mode = str(form.get("from", "start"))
        at = messages.parse_time(str(form["time"])) if mode == "time" and form.get("time") else None
        max_records = min(
            _int(str(form.get("max_records", "")), config.scan_max_records) or 1,
            config.scan_max_records,
        )
        start = await run_in_threadpool(
            messages.start_offsets,
            console.cluster,
            name,
            marks,
            mode,
            max_records // max(len(partitions), 1),
            _int(str(form.get("offset", ""))),
            at,
        )
        scan = console.scans.start(
            name,
            flt,
            start,
            {p: high for p, (_, high) in marks.items()},
            max_records=max_records,
            max_seconds=config.scan_max_seconds,
            max_matches=config.scan_max_matches,
        )
        return page("scan.html", request, scan=scan, topic=name)

    async def scan_status(request: Request) -> Response:
        console = consoles.get(request)
        scan = console.scans.get(request.path_params["id"])
        return page("scan.html", request, scan=scan, topic=scan.topic)

    async def scan_cancel(request: Request) -> Response:
        console = consoles.get(request)
        scan = console.scans.get(request.path_params["id"])
        scan.cancelled.set()
        for _ in range(50):
            if not scan.running:
                break
            await asyncio.sleep(0.01)
        return page("scan.html", request, scan=scan, topic=scan.topic)

    async def topic_tail(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        partition = _int(request.query_params.get("partition"))
        row = templates.env.get_template("_record.html")

        def render(record: Any) -> str:
            return row.render(r=record, live=True)

        stream = messages.tail(
            console.cluster,
            console.decoder,
            name,
            partition,
            render,
            request.is_disconnected,
            config.tail_max_seconds,
        )
        await run_in_threadpool(console.cluster.topic, name)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def topic_produce_form(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        metadata = await run_in_threadpool(console.cluster.topic, name)
        schema = await run_in_threadpool(messages.latest_schema, console.cluster, f"{name}-value")
        return page(
            "produce.html",
            request,
            topic=name,
            partitions=sorted(metadata.partitions),
            schema=schema,
            tab="produce",
        )

    async def topic_produce(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]
        form = await request.form()
        produced = await run_in_threadpool(
            messages.produce,
            console.cluster,
            name,
            str(form.get("key", "")),
            str(form.get("value", "")),
            str(form.get("headers", "")),
            _int(str(form.get("partition", ""))),
            form.get("raw") != "1",
        )
        how = f" with {produced.schema}" if produced.schema else " as typed (no schema)"
        return page(
            "notice.html",
            request,
            message=f"written to {name} partition {produced.partition} at offset "
            f"{produced.offset}{how}",
            href=f"/topics/{name}/messages?partition={produced.partition}&from=offset"
            f"&offset={produced.offset}",
        )

    # -- groups --------------------------------------------------------------------------

    async def group_list(request: Request) -> Response:
        console = consoles.get(request)
        rows = await run_in_threadpool(groups.list_groups, console.cluster)
        return page("groups.html", request, groups=rows)

    async def group_detail(request: Request) -> Response:
        console = consoles.get(request)
        group = request.path_params["id"]
        detail = await run_in_threadpool(groups.describe, console.cluster, group, console.lag)
        name = "group_lag.html" if request.query_params.get("part") == "lag" else "group.html"
        topic_names = sorted({p.topic for p in detail.partitions})
        return page(name, request, group=detail, chart=_chart(detail.history), topics=topic_names)

    async def group_reset(request: Request) -> Response:
        console = consoles.get(request)
        group = request.path_params["id"]
        form = await request.form()
        dry_run = form.get("execute") != "1"
        if not dry_run and config.read_only:
            raise ConsoleError("this console is read-only (--read-only)", 403)
        if not dry_run and (
            request.headers.get("HX-Request") != "true" or not _same_origin(request)
        ):
            raise ConsoleError("writes are taken from the console's pages only", 403)
        to = str(form.get("to", "earliest"))
        at = messages.parse_time(str(form.get("time", ""))) if to == "time" else None
        rows = await run_in_threadpool(
            groups.reset,
            console.cluster,
            group,
            str(form.get("topic", "")),
            to,
            at,
            dry_run=dry_run,
        )
        return page("group_reset.html", request, rows=rows, dry_run=dry_run, group=group)

    # -- schemas -------------------------------------------------------------------------

    async def subject_list(request: Request) -> Response:
        console = consoles.get(request)
        rows = await run_in_threadpool(schemas.subjects, console.cluster)
        return page("schemas.html", request, subjects=rows)

    async def subject_detail(request: Request) -> Response:
        console = consoles.get(request)
        subject = request.path_params["subject"]
        q = request.query_params

        def gather() -> dict[str, Any]:
            numbers = schemas.versions(console.cluster, subject)
            b = _int(q.get("b"), numbers[-1])
            a = _int(q.get("a"), numbers[-2] if len(numbers) > 1 else numbers[-1])
            old = schemas.version(console.cluster, subject, a or 1)
            new = schemas.version(console.cluster, subject, b or 1)
            return {
                "subject": subject,
                "numbers": numbers,
                "old": old,
                "new": new,
                "diff": schemas.diff(old, new),
                "level": schemas.compatibility(console.cluster, subject),
            }

        return page("subject.html", request, **(await run_in_threadpool(gather)))

    async def subject_check(request: Request) -> Response:
        console = consoles.get(request)
        subject = request.path_params["subject"]
        form = await request.form()
        found = await run_in_threadpool(
            schemas.check,
            console.cluster,
            subject,
            str(form.get("schema", "")),
            str(form.get("type", "AVRO")),
        )
        return page("subject_check.html", request, check=found)

    # -- catalog -------------------------------------------------------------------------

    async def catalog_page(request: Request) -> Response:
        console = consoles.get(request)

        def gather() -> dict[str, Any]:
            services = console.catalog.services()
            events = console.catalog.events()
            return {
                "services": services,
                "events": events,
                "svg": lineage.svg(lineage.graph(services, events)),
            }

        return page("catalog.html", request, **(await run_in_threadpool(gather)))

    async def catalog_service(request: Request) -> Response:
        console = consoles.get(request)
        name = request.path_params["name"]

        def gather() -> dict[str, Any]:
            service = console.catalog.service(name)
            all_topics = sorted(console.cluster.metadata().topics)
            return {
                "service": service,
                "internal": lineage.internal_topics(service, all_topics),
            }

        return page("service.html", request, **(await run_in_threadpool(gather)))

    async def catalog_event(request: Request) -> Response:
        console = consoles.get(request)
        topic = request.query_params.get("topic", "")
        event_type = request.query_params.get("type") or None

        def gather() -> dict[str, Any]:
            event = console.catalog.event(topic, event_type)
            sample = lineage.example(console.cluster, console.decoder, topic, event_type)
            return {"event": event, "example": sample}

        return page("event.html", request, **(await run_in_threadpool(gather)))

    async def asyncapi(request: Request) -> Response:
        console = consoles.get(request)
        document = await run_in_threadpool(console.catalog.asyncapi)
        return JSONResponse(
            document,
            headers={"Content-Disposition": 'attachment; filename="asyncapi.json"'},
        )

    # -- trace ---------------------------------------------------------------------------

    async def trace_page(request: Request) -> Response:
        console = consoles.get(request)
        q = request.query_params
        wanted = q.get("id", "").strip()
        found = None
        if wanted:

            def gather() -> Any:
                names = q.getlist("topic") or _trace_topics(console)
                since = messages.parse_time(q["since"]) if q.get("since") else None
                return trace.trace(
                    console.cluster,
                    console.decoder,
                    wanted,
                    names,
                    since,
                    config.trace_max_records,
                )

            found = await run_in_threadpool(gather)
        return page("trace.html", request, trace=found, wanted=wanted, q=q)

    # -- dead letters --------------------------------------------------------------------

    async def dlq_list(request: Request) -> Response:
        console = consoles.get(request)
        rows = await run_in_threadpool(dead_letters.list_dlqs, console.cluster)
        return page("dlqs.html", request, dlqs=rows)

    async def dlq_detail(request: Request) -> Response:
        console = consoles.get(request)
        topic = request.path_params["topic"]
        found = await run_in_threadpool(
            dead_letters.letters, console.cluster, console.decoder, topic
        )
        return page("dlq.html", request, topic=topic, letters=found)

    async def dlq_replay(request: Request) -> Response:
        console = consoles.get(request)
        topic = request.path_params["topic"]
        form = await request.form()
        dry_run = form.get("dry_run") == "1"
        if not dry_run and config.read_only:
            raise ConsoleError("this console is read-only (--read-only)", 403)
        if not dry_run and (
            request.headers.get("HX-Request") != "true" or not _same_origin(request)
        ):
            raise ConsoleError("writes are taken from the console's pages only", 403)
        outcome = await run_in_threadpool(
            dead_letters.replay,
            console.cluster,
            topic,
            str(form.get("where", "")) or None,
            dry_run,
        )
        return page("dlq_replay.html", request, outcome=outcome, topic=topic)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", route(home)),
        Route("/healthz", healthz),
        Route("/topics", route(topic_list)),
        Route("/topics", write(topic_create), methods=["POST"]),
        Route("/topics/{name}", route(topic_detail)),
        Route("/topics/{name}/config", write(topic_config), methods=["POST"]),
        Route("/topics/{name}/delete", write(topic_delete), methods=["POST"]),
        Route("/topics/{name}/messages", route(topic_messages)),
        Route("/topics/{name}/scan", route(scan_start), methods=["POST"]),
        Route("/topics/{name}/tail", route(topic_tail)),
        Route("/topics/{name}/produce", route(topic_produce_form)),
        Route("/topics/{name}/produce", write(topic_produce), methods=["POST"]),
        Route("/scans/{id}", route(scan_status)),
        Route("/scans/{id}/cancel", route(scan_cancel), methods=["POST"]),
        Route("/groups", route(group_list)),
        Route("/groups/{id}", route(group_detail)),
        Route("/groups/{id}/reset", route(group_reset), methods=["POST"]),
        Route("/schemas", route(subject_list)),
        Route("/schemas/{subject}", route(subject_detail)),
        Route("/schemas/{subject}/check", route(subject_check), methods=["POST"]),
        Route("/catalog", route(catalog_page)),
        Route("/catalog/services/{name}", route(catalog_service)),
        Route("/catalog/event", route(catalog_event)),
        Route("/catalog/asyncapi.json", route(asyncapi)),
        Route("/trace", route(trace_page)),
        Route("/dlq", route(dlq_list)),
        Route("/dlq/{topic}", route(dlq_detail)),
        Route("/dlq/{topic}/replay", route(dlq_replay), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(LoginMiddleware, auth=auth)] if auth is not None else []
    app = Starlette(routes=routes, middleware=middleware)
    app.state.consoles = consoles
    return app


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return True  # same-origin requests without Origin (older browsers, tools)
    return urlparse(origin).netloc == request.headers.get("host")


def _trace_topics(console: Console) -> list[str]:
    """The catalog's event topics, else every topic that is not internal or a dlq."""
    try:
        events = console.catalog.events()
    except ConsoleError:
        events = []
    names = sorted({e["topic"] for e in events})
    if names:
        return names
    return sorted(
        n
        for n in console.cluster.metadata().topics
        if not n.startswith("_") and not n.endswith(".dlq")
    )


def _chart(history: list[tuple[float, int]], width: int = 480, height: int = 90) -> str:
    """The lag over time as a small inline SVG line."""
    if len(history) < 2:
        return ""
    t0, t1 = history[0][0], history[-1][0]
    top = max(lag for _, lag in history) or 1
    span = (t1 - t0) or 1
    points = " ".join(
        f"{(t - t0) / span * (width - 10) + 5:.1f},{height - 5 - lag / top * (height - 20):.1f}"
        for t, lag in history
    )
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="lag over time"><polyline fill="none" stroke="#2a6fb0" '
        f'stroke-width="2" points="{points}"/><text x="5" y="12" font-size="11">max {top:,}'
        f'</text><text x="{width - 5}" y="{height - 2}" font-size="11" '
        f'text-anchor="end">{span:.0f} s</text></svg>'
    )


def _ms_text(value: int | float | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


def _bytes_text(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"
