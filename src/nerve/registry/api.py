"""The Confluent Schema Registry REST API over a Registry, as a Starlette application.

Handlers only translate: path and query in, JSON out. Registry calls may wait on Kafka, so they
run in Starlette's thread pool, never on the event loop (which may be the broker's, under
``nerve up``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nerve.registry import errors
from nerve.registry.openapi import openapi_document
from nerve.registry.registry import SCHEMA_TYPES, Registry, SchemaRequest

log = logging.getLogger("nerve.registry")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=CONTENT_TYPE)


def flag(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query flag; clients send ``true``, ``True`` (Python's str(bool)) or ``1``."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes")


def schema_id(request: Request) -> int:
    raw = request.path_params["id"]
    try:
        return int(raw)
    except ValueError:
        raise errors.schema_not_found(f"Schema {raw} not found") from None


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"The request body is not valid JSON: {exc}") from None


def build_app(registry: Registry) -> Starlette:
    """The ASGI application serving ``registry``."""

    def endpoint(work: Callable[[Request, Any], Any], *, body: bool = False) -> Handler:
        async def handle(request: Request) -> Response:
            payload = await json_body(request) if body else None
            result = await run_in_threadpool(work, request, payload)
            return result if isinstance(result, Response) else json_response(result)

        return handle

    sub = "/subjects/{subject:str}"
    ver = sub + "/versions/{version:str}"

    def subject(request: Request) -> str:
        return str(request.path_params["subject"])

    def version(request: Request) -> str:
        return str(request.path_params["version"])

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
        at = request.path_params.get("version")
        result = registry.check(
            subject(request), at, SchemaRequest.from_json(body), flag(request, "normalize")
        )
        if not flag(request, "verbose"):
            result.pop("messages")
        return result

    def by_id(request: Request, _: Any) -> Any:
        return registry.schema_by_id(schema_id(request), request.query_params.get("format"))

    def raw_by_id(request: Request, _: Any) -> Any:
        found = registry.schema_by_id(schema_id(request), request.query_params.get("format"))
        return Response(found["schema"], media_type=CONTENT_TYPE)

    def id_subjects(request: Request, _: Any) -> Any:
        uses = registry.id_uses(schema_id(request), flag(request, "deleted"))
        return sorted({u.subject for u in uses})

    def id_versions(request: Request, _: Any) -> Any:
        uses = registry.id_uses(schema_id(request), flag(request, "deleted"))
        return [{"subject": u.subject, "version": u.version} for u in uses]

    def get_version(request: Request, _: Any) -> Any:
        return registry.version(
            subject(request),
            version(request),
            flag(request, "deleted"),
            request.query_params.get("format"),
        )

    def raw_version(request: Request, payload: Any) -> Any:
        found = get_version(request, payload)
        return Response(found["schema"], media_type=CONTENT_TYPE)

    def config_subject(request: Request) -> str | None:
        return request.path_params.get("subject")

    def put_config(request: Request, body: Any) -> Any:
        level = body.get("compatibility") if isinstance(body, dict) else None
        if level is None and isinstance(body, dict):
            level = body.get("compatibilityLevel")
        return registry.set_config(config_subject(request), level)

    def put_mode(request: Request, body: Any) -> Any:
        mode = body.get("mode") if isinstance(body, dict) else None
        return registry.set_mode(config_subject(request), mode, flag(request, "force"))

    def delete_mode(request: Request, _: Any) -> Any:
        return registry.delete_mode(subject(request))

    routes = [
        Route("/", endpoint(lambda r, _: {}), methods=["GET"]),
        Route("/openapi.json", endpoint(lambda r, _: openapi_document()), methods=["GET"]),
        Route("/schemas/types", endpoint(lambda r, _: list(SCHEMA_TYPES)), methods=["GET"]),
        Route("/contexts", endpoint(lambda r, _: ["."]), methods=["GET"]),
        Route(
            "/schemas",
            endpoint(
                lambda r, _: registry.schemas(
                    r.query_params.get("subjectPrefix", ""),
                    flag(r, "deleted"),
                    flag(r, "latestOnly"),
                )
            ),
            methods=["GET"],
        ),
        Route("/schemas/ids/{id}", endpoint(by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/schema", endpoint(raw_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", endpoint(id_subjects), methods=["GET"]),
        Route("/schemas/ids/{id}/versions", endpoint(id_versions), methods=["GET"]),
        Route(
            "/subjects",
            endpoint(
                lambda r, _: registry.subjects(
                    r.query_params.get("subjectPrefix", ""), flag(r, "deleted")
                )
            ),
            methods=["GET"],
        ),
        Route(sub, endpoint(lookup, body=True), methods=["POST"]),
        Route(
            sub,
            endpoint(lambda r, _: registry.delete_subject(subject(r), flag(r, "permanent"))),
            methods=["DELETE"],
        ),
        Route(
            sub + "/versions",
            endpoint(lambda r, _: registry.versions(subject(r), flag(r, "deleted"))),
            methods=["GET"],
        ),
        Route(sub + "/versions", endpoint(register, body=True), methods=["POST"]),
        Route(ver, endpoint(get_version), methods=["GET"]),
        Route(
            ver,
            endpoint(
                lambda r, _: registry.delete_version(subject(r), version(r), flag(r, "permanent"))
            ),
            methods=["DELETE"],
        ),
        Route(ver + "/schema", endpoint(raw_version), methods=["GET"]),
        Route(
            ver + "/referencedby",
            endpoint(lambda r, _: registry.referenced_by(subject(r), version(r))),
            methods=["GET"],
        ),
        Route(
            "/compatibility" + sub + "/versions",
            endpoint(check, body=True),
            methods=["POST"],
        ),
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
            "/config/{subject:str}",
            endpoint(lambda r, _: registry.get_config(subject(r), flag(r, "defaultToGlobal"))),
            methods=["GET"],
        ),
        Route("/config/{subject:str}", endpoint(put_config, body=True), methods=["PUT"]),
        Route(
            "/config/{subject:str}",
            endpoint(lambda r, _: registry.delete_config(subject(r))),
            methods=["DELETE"],
        ),
        Route("/mode", endpoint(lambda r, _: registry.get_mode(None, True)), methods=["GET"]),
        Route("/mode", endpoint(put_mode, body=True), methods=["PUT"]),
        Route(
            "/mode/{subject:str}",
            endpoint(lambda r, _: registry.get_mode(subject(r), flag(r, "defaultToGlobal"))),
            methods=["GET"],
        ),
        Route("/mode/{subject:str}", endpoint(put_mode, body=True), methods=["PUT"]),
        Route("/mode/{subject:str}", endpoint(delete_mode), methods=["DELETE"]),
    ]

    async def registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.RegistryError)
        return json_response(exc.body(), exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return json_response(
            {"error_code": exc.status_code, "message": exc.detail}, exc.status_code
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return json_response({"error_code": 500, "message": f"Internal error: {exc}"}, 500)

    return Starlette(
        routes=routes,
        exception_handlers={
            errors.RegistryError: registry_error,
            HTTPException: http_error,
            Exception: unexpected,
        },
    )
