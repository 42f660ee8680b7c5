"""JWT validation against a JSON Web Key Set, shared by the broker's OAUTHBEARER (Kafka's
``sasl.oauthbearer.*`` settings) and the registry's bearer tokens (Confluent's
``oauthbearer.*``): the same issuer's tokens prove the same principal to both."""

from __future__ import annotations

import time


class TokenRejected(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class JwtValidator:
    """Validates JWTs with PyJWT against a JSON Web Key Set read from a file or URL
    (``sasl.oauthbearer.jwks.endpoint.url``), as Kafka's broker-side JWT validator does."""

    def __init__(
        self,
        jwks_url: str,
        audience: list[str],
        issuer: str | None,
        subject_claim: str = "sub",
        clock_skew_s: int = 30,
    ) -> None:
        self.jwks_url = jwks_url
        self.audience = audience
        self.issuer = issuer
        self.subject_claim = subject_claim
        self.clock_skew_s = clock_skew_s
        self._keys: dict[str, object] = {}
        self._loaded_at = 0.0
        self._load()

    def _load(self) -> None:
        import jwt

        url = self.jwks_url
        if url.startswith("file:"):
            path = url[len("file://") :] if url.startswith("file://") else url[len("file:") :]
            with open(path) as handle:
                text = handle.read()
        else:
            import httpx

            text = httpx.get(url, timeout=10).text
        keys = jwt.PyJWKSet.from_json(text)
        self._keys = {key.key_id or "": key for key in keys.keys}
        self._loaded_at = time.monotonic()

    def __call__(self, token: str) -> tuple[str, int]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("invalid_token", str(exc)) from None
        kid = header.get("kid") or ""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > 60:
            self._load()  # the issuer may have rotated its keys
            key = self._keys.get(kid)
        if key is None:
            raise TokenRejected("invalid_token", f"no key {kid!r} in the key set")
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[header.get("alg", "RS256")] if header.get("alg") != "none" else [],
                audience=self.audience or None,
                issuer=self.issuer,
                leeway=self.clock_skew_s,
                options={"require": ["exp"], "verify_aud": bool(self.audience)},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected("invalid_token", str(exc)) from None
        subject = claims.get(self.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("invalid_token", f"no {self.subject_claim} claim")
        return subject, int(claims["exp"]) * 1000
