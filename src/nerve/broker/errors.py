"""Typed errors that carry the Kafka error code they are answered with."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = ["ApiError", "ErrorCode", "RecordErrors"]


class ApiError(Exception):
    """Refuse one item of a request (a topic, a partition) with a Kafka error code."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class RecordErrors(ApiError):
    """Refuse a produced batch for the records it names: (index in the batch, reason) pairs.

    The message is Kafka's summary of them, so clients show the same text on either broker.
    """

    def __init__(self, code: ErrorCode, record_errors: list[tuple[int, str]]) -> None:
        shown = ", ".join(
            f"RecordError(batchIndex={i}, message='{text}')" for i, text in record_errors[:3]
        )
        super().__init__(
            code,
            f"One or more records have been rejected due to {len(record_errors)} record errors "
            f"in total, and only showing the first three errors at most: [{shown}]",
        )
        self.record_errors = record_errors
