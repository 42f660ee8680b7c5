"""Typed errors that carry the Kafka error code they are answered with."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = ["ApiError", "ErrorCode"]


class ApiError(Exception):
    """Refuse one item of a request (a topic, a partition) with a Kafka error code."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message
