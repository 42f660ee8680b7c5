"""The principal of a TLS client certificate: its subject as an RFC 2253 distinguished name
(``CN=alice,OU=eng,O=acme``, most specific first, as Java's X500Principal writes it), turned
into a name by Kafka's ``ssl.principal.mapping.rules``.

Rules, comma-separated, are tried in order: ``RULE:pattern/replacement/`` (optionally ``L`` or
``U`` after the last slash to lower- or upper-case the result) applies when the Java regular
expression ``pattern`` matches the whole name; ``DEFAULT`` takes the name as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(,\s*|$)")
_PARSER = re.compile(_RULE)
_BACK_REFERENCE = re.compile(r"\$(\d+)")


class NoMatchingRule(ValueError):
    """No rule applies to a certificate's name: the client is refused."""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        groups = self.pattern.groups
        result = self.pattern.sub(lambda m: _expand(self.replacement, m, groups), name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


def _expand(replacement: str, match: re.Match[str], groups: int) -> str:
    """Java's Matcher.replaceAll replacement: ``$n`` a group, ``\\x`` a literal x; a
    reference past the last group is shortened digit by digit, then taken literally."""
    out = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1])
            i += 2
            continue
        if char == "$":
            digits = _BACK_REFERENCE.match(replacement, i)
            if digits is not None:
                text = digits.group(1)
                while len(text) > 1 and int(text) > groups:
                    text = text[:-1]
                if int(text) <= groups:
                    out.append(match.group(int(text)) or "")
                    i += 1 + len(text)
                    continue
            out.append("$")
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


class SslPrincipalMapper:
    def __init__(self, rules: str | None) -> None:
        parsed = [_parse(rule) for rule in _split(rules or "DEFAULT")]
        self.rules = [rule for rule in parsed if rule is not None]
        self.text = rules or "DEFAULT"

    def name(self, distinguished_name: str) -> str:
        for rule in self.rules:
            result = rule.apply(distinguished_name)
            if result is not None:
                return result
        raise NoMatchingRule(f"No rules apply to {distinguished_name}, rules {self.text}")


def _split(text: str) -> list[str]:
    return [m.group(1) for m in _SPLITTER.finditer(text.strip()) if m.group(0)]


def _parse(rule: str) -> _Rule | None:
    match = _PARSER.match(rule)
    if match is None or match.end() != len(rule):
        unmatched = rule[match.end() :] if match else rule
        raise ValueError(f"Invalid rule: `{rule}`, unmatched substring: `{unmatched}`")
    if match.group(1):
        return _Rule(None)
    if match.group(2) is not None:
        try:
            pattern = re.compile(match.group(2))
        except re.error as exc:
            raise ValueError(f"Invalid rule: `{rule}`: {exc}") from None
        return _Rule(pattern, match.group(3), match.group(4))
    return None  # empty rules are ignored, as Kafka does


def subject_name(der_certificate: bytes) -> str:
    """The certificate's subject as RFC 2253 writes it (Java's X500Principal.getName())."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der_certificate).subject.rfc4514_string()
