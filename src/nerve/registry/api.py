"""The Confluent Schema Registry REST API over a Registry, as a Starlette application.

Handlers only translate: path and query in, JSON out. Registry calls may wait on Kafka, so they
run in Starlette's thread pool, never on the event loop (which may be the broker's, under
``nerve up``). Requests are taken as Confluent's resources take them: subjects may hold ``/``
(:mod:`nerve.registry.paths`), the answer's media type is negotiated and the body's checked
(:mod:`nerve.registry.media`), and errors carry Confluent's codes and texts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nerve.registry import errors, media
from nerve.registry.acls import AclMiddleware, AclStore
from nerve.registry.auth import BasicAuth, BasicAuthMiddleware, BearerAuth
from nerve.registry.config import RegistryConfig
from nerve.registry.openapi import openapi_document
from nerve.registry.paths import RawPathRouting, path_param
from nerve.registry.registry import SCHEMA_TYPES, Registry, SchemaRequest
from nerve.registry.tls import CertificateMiddleware
from nerve.security.ssl_principal import SslPrincipalMapper

if TYPE_CHECKING:
    from nerve.registry.metrics import RegistryMetrics

log = logging.getLogger("nerve.registry")

CONTENT_TYPE = media.V1_JSON
Handler = Callable[[Request], Awaitable[Response]]
_INT32 = re.compile(r"[+-]?[0-9]{1,10}\Z")


def json_response(body: Any, status: int = 200, media_type: str = CONTENT_TYPE) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=media_type)


def flag(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query flag as Jersey reads one: ``true`` in any case is true, all else false
    (clients send ``true``, Python's ``True``; nerve also takes ``1`` and ``yes``)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes")


def number(request: Request, name: str, default: int) -> int:
    """An integer query parameter (``offset``, ``limit``); one that does not parse is 404, as
    Jersey answers a query parameter it cannot convert."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if not _INT32.match(value.strip()) or not -(2**31) <= int(value) < 2**31:
        raise errors.http_status(404)
    return int(value)


def page(items: list[Any], request: Request, default_limit: int, max_limit: int) -> list[Any]:
    """``offset``/``limit`` as Confluent applies them: a limit outside 1..max is the default."""
    offset = max(number(request, "offset", 0), 0)
    limit = number(request, "limit", -1)
    if not 0 < limit <= max_limit:
        limit = default_limit
    return items[offset : offset + limit]


def schema_id(request: Request) -> int:
    """The ``{id}`` of ``/schemas/ids/{id}``: a 32-bit integer, else Jersey's bare 404."""
    raw = path_param(request.path_params, "id")
    if not _INT32.match(raw) or not -(2**31) <= int(raw) < 2**31:
        raise errors.http_status(404)
    return int(raw)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.request_too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.request_too_large(None, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except RecursionError:
        raise errors.bad_request("The request body nests too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"The request body is not valid JSON: {exc}") from None


def build_app(
    registry: Registry,
    config: RegistryConfig | None = None,
    metrics: RegistryMetrics | None = None,
    auth: BasicAuth | BearerAuth | None = None,
    *,
    acl_store: AclStore | None = None,
    subjects_of_id: Callable[[int], set[str] | None] | None = None,
    certificates: SslPrincipalMapper | None = None,
) -> Starlette:
    """The ASGI application serving ``registry``; with ``metrics``, every request measured;
    with ``auth``, every request authenticated first; with ``acl_store``, authorized by the
    caller's ACLs (``subjects_of_id`` names the subjects a schema id belongs to); with
    ``certificates``, a client certificate names the caller unless ``auth`` does."""
    settings = config or RegistryConfig()

    def endpoint(work: Callable[[Request, Any], Any], *, body: bool = False) -> Handler:
        async def handle(request: Request) -> Response:
            if body and not media.consumable(request.headers.get("content-type")):
                raise errors.http_status(415)
            answer_type = media.negotiate(request.headers.get("accept"))
            if answer_type is None:
                raise errors.http_status(406)
            request.scope["nerve.media_type"] = answer_type
            payload = None
            if body:
                payload = parse_json(await read_body(request, settings.max_request_bytes))
            result = await run_in_threadpool(work, request, payload)
            if isinstance(result, Response):
                return result
            return json_response(result, media_type=answer_type)

        return handle

    def plain(work: Callable[[], Any]) -> Handler:
        """nerve's own routes (health, OpenAPI): plain JSON, no negotiation."""

        async def handle(request: Request) -> Response:
            return json_response(await run_in_threadpool(work), media_type=media.JSON)

        return handle

    sub = "/subjects/{subject}"
    ver = sub + "/versions/{version}"

    def subject(request: Request) -> str:
        return path_param(request.path_params, "subject")

    def version(request: Request) -> str:
        return path_param(request.path_params, "version")

    def text(request: Request, found: dict[str, Any]) -> Response:
        return Response(found["schema"], media_type=request.scope["nerve.media_type"])

    def register(request: Request, body: Any) -> Any:
        return registry.register(
            subject(request), SchemaRequest.from_json(body), flag(request, "normalize")
        )

    def lookup(request: Request, body: Any) -> Any:
        return registry.lookup(
            subject(request),
            SchemaRequest.from_json(body),
            flag(request, "normalize"),
            flag(request, "deleted"),
        )

    def check(request: Request, body: Any) -> Any:
        at = version(request) if "version" in request.path_params else None
        return registry.check(
            subject(request),
            at,
            SchemaRequest.from_json(body),
            flag(request, "normalize"),
            flag(request, "verbose"),
        )

    def by_id(request: Request, _: Any) -> Any:
        return registry.schema_by_id(schema_id(request), request.query_params.get("format"))

    def raw_by_id(request: Request, payload: Any) -> Any:
        return text(request, by_id(request, payload))

    def id_subjects(request: Request, _: Any) -> Any:
        uses = registry.id_uses(schema_id(request), flag(request, "deleted"))
        subjects = list(dict.fromkeys(u.subject for u in uses))
        return page(subjects, request, 2**31 - 1, 2**31 - 1)

    def id_versions(request: Request, _: Any) -> Any:
        uses = registry.id_uses(schema_id(request), flag(request, "deleted"))
        found = [{"subject": u.subject, "version": u.version} for u in uses]
        return page(found, request, 2**31 - 1, 2**31 - 1)

    def schemas(request: Request, _: Any) -> Any:
        found = registry.schemas(
            request.query_params.get("subjectPrefix", ""),
            flag(request, "deleted"),
            flag(request, "latestOnly"),
        )
        return page(
            found,
            request,
            settings.schema_search_default_limit,
            settings.schema_search_max_limit,
        )

    def subjects(request: Request, _: Any) -> Any:
        found = registry.subjects(
            request.query_params.get("subjectPrefix", ""),
            flag(request, "deleted"),
            flag(request, "deletedOnly"),
        )
        return page(found, request, 2**31 - 1, 2**31 - 1)

    def versions(request: Request, _: Any) -> Any:
        found = registry.versions(
            subject(request),
            flag(request, "deleted"),
            flag(request, "deletedOnly"),
            flag(request, "deletedAsNegative"),
        )
        return page(found, request, 2**31 - 1, 2**31 - 1)

    def get_version(request: Request, _: Any) -> Any:
        return registry.version(
            subject(request),
            version(request),
            flag(request, "deleted"),
            request.query_params.get("format"),
        )

    def raw_version(request: Request, payload: Any) -> Any:
        return text(request, get_version(request, payload))

    def referenced_by(request: Request, _: Any) -> Any:
        found = registry.referenced_by(subject(request), version(request))
        return page(
            found,
            request,
            settings.schema_search_default_limit,
            settings.schema_search_max_limit,
        )

    def config_subject(request: Request) -> str | None:
        return subject(request) if "subject" in request.path_params else None

    def put_config(request: Request, body: Any) -> Any:
        level = body.get("compatibility") if isinstance(body, dict) else None
        if level is None and isinstance(body, dict):
            level = body.get("compatibilityLevel")
        return registry.set_config(config_subject(request), level)

    def put_mode(request: Request, body: Any) -> Any:
        mode = body.get("mode") if isinstance(body, dict) else None
        return registry.set_mode(config_subject(request), mode, flag(request, "force"))

    # Matched in order, so what serializers and deserializers call all day comes first.
    routes = [
        Route("/schemas/ids/{id}", endpoint(by_id), methods=["GET"]),
        Route(sub + "/versions", endpoint(register, body=True), methods=["POST"]),
        Route(sub, endpoint(lookup, body=True), methods=["POST"]),
        Route(ver, endpoint(get_version), methods=["GET"]),
        Route("/schemas/types", endpoint(lambda r, _: list(SCHEMA_TYPES)), methods=["GET"]),
        Route("/contexts", endpoint(lambda r, _: ["."]), methods=["GET"]),
        Route("/schemas", endpoint(schemas), methods=["GET"]),
        Route("/schemas/ids/{id}/schema", endpoint(raw_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", endpoint(id_subjects), methods=["GET"]),
        Route("/schemas/ids/{id}/versions", endpoint(id_versions), methods=["GET"]),
        Route("/subjects", endpoint(subjects), methods=["GET"]),
        Route(
            sub,
            endpoint(lambda r, _: registry.delete_subject(subject(r), flag(r, "permanent"))),
            methods=["DELETE"],
        ),
        Route(sub + "/versions", endpoint(versions), methods=["GET"]),
        Route(
            ver,
            endpoint(
                lambda r, _: registry.delete_version(subject(r), version(r), flag(r, "permanent"))
            ),
            methods=["DELETE"],
        ),
        Route(ver + "/schema", endpoint(raw_version), methods=["GET"]),
        Route(ver + "/referencedby", endpoint(referenced_by), methods=["GET"]),
        Route("/compatibility" + sub + "/versions", endpoint(check, body=True), methods=["POST"]),
        Route("/compatibility" + ver, endpoint(check, body=True), methods=["POST"]),
        Route(
            "/config",
            endpoint(lambda r, _: registry.get_config(None, True)),
            methods=["GET"],
        ),
        Route("/config", endpoint(put_config, body=True), methods=["PUT"]),
        Route(
            "/config",
            endpoint(lambda r, _: registry.delete_config(None)),
            methods=["DELETE"],
        ),
        Route(
            "/config/{subject}",
            endpoint(lambda r, _: registry.get_config(subject(r), flag(r, "defaultToGlobal"))),
            methods=["GET"],
        ),
        Route("/config/{subject}", endpoint(put_config, body=True), methods=["PUT"]),
        Route(
            "/config/{subject}",
            endpoint(lambda r, _: registry.delete_config(subject(r))),
            methods=["DELETE"],
        ),
        Route("/mode", endpoint(lambda r, _: registry.get_mode(None, True)), methods=["GET"]),
        Route("/mode", endpoint(put_mode, body=True), methods=["PUT"]),
        Route(
            "/mode/{subject}",
            endpoint(lambda r, _: registry.get_mode(subject(r), flag(r, "defaultToGlobal"))),
            methods=["GET"],
        ),
        Route("/mode/{subject}", endpoint(put_mode, body=True), methods=["PUT"]),
        Route(
            "/mode/{subject}",
            endpoint(lambda r, _: registry.delete_mode(subject(r))),
            methods=["DELETE"],
        ),
        # Confluent's RootResource: an empty object, what tools probe for liveness.
        Route("/", endpoint(lambda r, _: {}), methods=["GET"]),
        Route("/", endpoint(lambda r, _: {}, body=True), methods=["POST"]),
        Route("/v1/metadata/id", endpoint(lambda r, _: registry.cluster_id()), methods=["GET"]),
        Route(
            "/v1/metadata/version",
            endpoint(lambda r, _: registry.server_version()),
            methods=["GET"],
        ),
        # Karapace's probes, kept as courtesies for tools written against it.
        Route("/_health", plain(registry.health), methods=["GET"]),
        Route("/master_available", plain(lambda: {"master_available": True}), methods=["GET"]),
        Route("/openapi.json", plain(openapi_document), methods=["GET"]),
    ]

    def error_type(request: Request) -> str:
        negotiated = request.scope.get("nerve.media_type")
        return negotiated or media.negotiate(request.headers.get("accept")) or CONTENT_TYPE

    async def registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.RegistryError)
        return json_response(exc.body(), exc.status, error_type(request))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        answer = errors.http_status(exc.status_code)
        return json_response(answer.body(), answer.status, error_type(request))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return json_response({"error_code": 500, "message": f"Internal error: {exc}"}, 500)

    middleware = []
    if certificates is not None:  # the certificate's principal, unless auth names another
        middleware.append(Middleware(CertificateMiddleware, mapper=certificates))
    if auth is not None:  # outermost: nothing runs for a request refused
        middleware.append(Middleware(BasicAuthMiddleware, auth=auth))
    middleware.append(Middleware(RawPathRouting))
    if acl_store is not None:  # inside RawPathRouting: it reads subjects from the routed path
        middleware.append(
            Middleware(
                AclMiddleware, store=acl_store, subjects_of_id=subjects_of_id or (lambda _: None)
            )
        )
    if metrics is not None:  # inside RawPathRouting: it sees the route the router matched
        middleware.append(Middleware(metrics.middleware))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            errors.RegistryError: registry_error,
            HTTPException: http_error,
            Exception: unexpected,
        },
    )
