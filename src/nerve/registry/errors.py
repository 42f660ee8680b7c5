"""Errors the REST API answers with: an HTTP status plus Confluent's ``error_code``.

The texts are Confluent Schema Registry's own (``rest/exceptions/Errors.java`` and the
``Rest*Exception`` classes of its 8.x line), typos included, because clients and scripts match
on them; ``context`` is always the default context ``.``, the only one nerve serves.
"""

from __future__ import annotations

from http import HTTPStatus

DEFAULT_CONTEXT = "."


class RegistryError(Exception):
    """A failure a client is told about as ``{"error_code": ..., "message": ...}``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def http_status(status: int) -> RegistryError:
    """What Jersey answers when no resource takes the request: ``HTTP 404 Not Found``,
    ``HTTP 406 Not Acceptable``, ... with the status as the error code."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return RegistryError(status, status, f"HTTP {status} {phrase}")


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    if schema_id is None:
        return RegistryError(404, 40403, "Schema not found")
    return RegistryError(404, 40403, f"Schema {schema_id} not found")


def subject_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404, 40404, f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
    )


def subject_not_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404, 40405, f"Subject '{subject}' was not deleted first before being permanently deleted"
    )


def version_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete "
        "permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being "
        "permanently deleted",
    )


def subject_level_compatibility_not_configured(subject: str) -> RegistryError:
    return RegistryError(
        404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def subject_level_mode_not_configured(subject: str) -> RegistryError:
    return RegistryError(
        404, 40409, f"Subject '{subject}' does not have subject-level mode configured"
    )


def incompatible(subject: str, messages: list[str]) -> RegistryError:
    # Confluent answered error_code 409 for years and 40901 since late 2025; Karapace and most
    # clients expect 409, and every client keys on the HTTP status, so nerve keeps 409.
    return RegistryError(
        409,
        409,
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}"'
        f", details: [{', '.join(messages)}]",
    )


def reference_exists(subject: str, version: int) -> RegistryError:
    # Confluent prints the _schemas key of the referenced version.
    key = f"{{magic=1,keytype=SCHEMA,subject={subject},version={version}}}"
    return RegistryError(422, 42206, f"One or more references exist to the schema {key}.")


def invalid_schema(detail: str) -> RegistryError:
    if not detail.startswith("Invalid schema"):  # the Avro module words its own
        detail = f"Invalid schema: {detail}"
    return RegistryError(422, 42201, detail)


def invalid_version(version: object) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level() -> RegistryError:
    return RegistryError(
        422,
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


def invalid_mode() -> RegistryError:
    # Confluent's text also lists FORWARD, a mode nerve does not implement.
    return RegistryError(422, 42204, "Invalid mode. Valid values are READWRITE, READONLY, IMPORT.")


def operation_not_permitted(detail: str) -> RegistryError:
    return RegistryError(422, 42205, detail)


def read_only(subject: str) -> RegistryError:
    return operation_not_permitted(
        f"Subject {subject} in context {DEFAULT_CONTEXT} is in read-only mode"
    )


def not_in_import_mode(subject: str) -> RegistryError:
    return operation_not_permitted(
        f"Subject {subject} in context {DEFAULT_CONTEXT} is not in import mode"
    )


def not_in_read_write_mode(subject: str) -> RegistryError:
    return operation_not_permitted(
        f"Subject {subject} in context {DEFAULT_CONTEXT} is not in read-write mode"
    )


def invalid_subject(subject: str) -> RegistryError:
    return RegistryError(422, 42208, f"The specified subject '{subject}' is not a valid.")


def schema_too_large(detail: str) -> RegistryError:
    return RegistryError(422, 42209, detail)


def unprocessable(detail: str) -> RegistryError:
    return RegistryError(422, 422, detail)


def bad_request(detail: str) -> RegistryError:
    return RegistryError(400, 400, detail)


def request_too_large(size: int | None, limit: int) -> RegistryError:
    # Confluent sets no limit of its own (Jetty reads any body); nerve's is a setting.
    got = f"of {size} bytes " if size is not None else ""
    return RegistryError(
        413, 413, f"The request body {got}exceeds the limit of {limit} bytes (max.request.bytes)"
    )


def store_error(detail: str) -> RegistryError:
    return RegistryError(500, 50001, f"Error in the backend data store: {detail}")


def store_timeout(detail: str) -> RegistryError:
    return RegistryError(500, 50002, f"Operation timed out: {detail}")
