"""SCRAM credentials (KIP-554): per user and mechanism, the salt, iteration count, StoredKey
and ServerKey that RFC 5802 derives from the salted password. The password itself is never
sent to the broker (AlterUserScramCredentials carries the salted password) nor kept."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from nerve.broker.security.sasl import SCRAM_MECHANISMS
from nerve.broker.security.store import Key, Value

# Kafka's ScramMechanism codes in DescribeUserScramCredentials and AlterUserScramCredentials.
MECHANISM_CODES = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
CODES = {name: code for code, name in MECHANISM_CODES.items()}
_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
MIN_ITERATIONS = 4096  # Kafka's ScramMechanism.minIterations
MAX_ITERATIONS = 16384  # Kafka's ScramMechanism.maxIterations


@dataclass(frozen=True)
class Credential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def from_salted_password(
        cls, mechanism: str, salt: bytes, salted_password: bytes, iterations: int
    ) -> Credential:
        digest = _HASHES[mechanism]
        client_key = hmac.new(salted_password, b"Client Key", digest).digest()
        server_key = hmac.new(salted_password, b"Server Key", digest).digest()
        return cls(salt, digest(client_key).digest(), server_key, iterations)

    @classmethod
    def from_password(
        cls, mechanism: str, password: str, salt: bytes, iterations: int = MIN_ITERATIONS
    ) -> Credential:
        salted = hashlib.pbkdf2_hmac(_HASHES[mechanism]().name, password.encode(), salt, iterations)
        return cls.from_salted_password(mechanism, salt, salted, iterations)

    def to_json(self) -> dict[str, object]:
        return {
            "salt": base64.b64encode(self.salt).decode(),
            "stored_key": base64.b64encode(self.stored_key).decode(),
            "server_key": base64.b64encode(self.server_key).decode(),
            "iterations": self.iterations,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Credential:
        return cls(
            base64.b64decode(str(data["salt"])),
            base64.b64decode(str(data["stored_key"])),
            base64.b64decode(str(data["server_key"])),
            int(data["iterations"]),  # type: ignore[call-overload]
        )


def credential_key(user: str, mechanism: str) -> Key:
    return {"kind": "scram", "user": user, "mechanism": mechanism}


class Credentials:
    """The credentials in memory, rebuilt from the security topic at start."""

    def __init__(self) -> None:
        self.by_user: dict[str, dict[str, Credential]] = {}

    def get(self, mechanism: str, user: str) -> Credential | None:
        return self.by_user.get(user, {}).get(mechanism)

    def apply(self, key: Key, value: Value) -> None:
        user, mechanism = key["user"], key["mechanism"]
        if mechanism not in SCRAM_MECHANISMS:
            return
        if value is None:
            mechanisms = self.by_user.get(user, {})
            mechanisms.pop(mechanism, None)
            if not mechanisms:
                self.by_user.pop(user, None)
        else:
            self.by_user.setdefault(user, {})[mechanism] = Credential.from_json(value)
