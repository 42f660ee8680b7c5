"""Dead letters: an event that could not be handled goes, untouched, to ``<topic>.dlq`` with
headers that say why, how often it was tried and where it came from; ``nerve dlq replay``
sends it back to its topic after a fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a light module: the nerve command reads it without pydantic
    from nerve.service.envelope import Headers

DLQ_SUFFIX = ".dlq"
PREFIX = "nerve_dlq_"
ERROR = PREFIX + "error"
ERROR_TYPE = PREFIX + "error_type"
ATTEMPTS = PREFIX + "attempts"
TOPIC = PREFIX + "topic"
PARTITION = PREFIX + "partition"
OFFSET = PREFIX + "offset"
SERVICE = PREFIX + "service"
HANDLER = PREFIX + "handler"
TIME = PREFIX + "time"


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def dead_letter_headers(
    original: Any,
    *,
    error: BaseException | str,
    attempts: int,
    topic: str,
    partition: int,
    offset: int,
    service: str,
    handler: str,
) -> Headers:
    """The original headers (minus an earlier failure's) plus this failure's."""
    kept: Headers = [(k, v) for k, v in original or () if not k.startswith(PREFIX)]
    error_type = type(error).__name__ if isinstance(error, BaseException) else "DecodeError"
    return [
        *kept,
        (ERROR, str(error)[:2000].encode()),
        (ERROR_TYPE, error_type.encode()),
        (ATTEMPTS, str(attempts).encode()),
        (TOPIC, topic.encode()),
        (PARTITION, str(partition).encode()),
        (OFFSET, str(offset).encode()),
        (SERVICE, service.encode()),
        (HANDLER, handler.encode()),
        (TIME, datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
    ]


def header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None
