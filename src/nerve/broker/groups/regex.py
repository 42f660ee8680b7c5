"""Regular expressions of consumer group subscriptions (KIP-848), in RE2 syntax.

Kafka compiles a member's ``SubscribedTopicRegex`` with RE2/J, so a pattern valid in Java's
``java.util.regex`` but outside RE2 (look-arounds, back-references) is refused with
INVALID_REGULAR_EXPRESSION there; Google's RE2 (``google-re2``) refuses the same patterns here.
A topic matches when the whole name matches, as RE2/J's ``matches``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2


class RegexError(ValueError):
    """The pattern is not valid RE2."""


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is answered to the client, not logged by RE2


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise RegexError(str(reason)) from None
