"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554) on nerve and on
Kafka 4.4: the same results and errors, and a change takes effect at once."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from tests.broker.security.conftest import SecureBroker


def _error(future: object) -> tuple[int, str]:
    with pytest.raises(KafkaException) as failure:
        future.result(30)  # type: ignore[attr-defined]
    error: KafkaError = failure.value.args[0]
    return error.code(), error.str()


def test_describe_lists_the_mechanisms_and_iterations(secure: SecureBroker) -> None:
    admin = secure.admin()
    described = admin.describe_user_scram_credentials(["scram-user"])["scram-user"].result(30)
    infos = sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos)
    assert infos == [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 8192)]


def test_describe_of_an_unknown_user_is_resource_not_found(secure: SecureBroker) -> None:
    admin = secure.admin()
    code, text = _error(admin.describe_user_scram_credentials(["nobody"])["nobody"])
    assert code == KafkaError.RESOURCE_NOT_FOUND
    # librdkafka may append a stray byte to this message: compare what both brokers send.
    assert (
        text.rstrip("\x01") == "Attempt to describe a user credential that does not exist: nobody"
    )


@pytest.mark.parametrize(
    ("iterations", "message"), [(1000, "Too few iterations"), (20000, "Too many iterations")]
)
def test_iterations_out_of_bounds_are_unacceptable(
    secure: SecureBroker, iterations: int, message: str
) -> None:
    admin = secure.admin()
    user = f"u-{uuid.uuid4().hex[:6]}"
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, iterations), b"pw"
    )
    code, text = _error(admin.alter_user_scram_credentials([upsert])[user])
    assert (code, text) == (KafkaError.UNACCEPTABLE_CREDENTIAL, message)


def test_deleting_a_credential_that_does_not_exist_is_resource_not_found(
    secure: SecureBroker,
) -> None:
    admin = secure.admin()
    deletion = UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_512)
    code, text = _error(admin.alter_user_scram_credentials([deletion])["nobody"])
    assert code == KafkaError.RESOURCE_NOT_FOUND
    assert text == "Attempt to delete a user credential that does not exist"


def test_a_user_altered_twice_in_one_request_is_a_duplicate(secure: SecureBroker) -> None:
    admin = secure.admin()
    user = f"u-{uuid.uuid4().hex[:6]}"
    alterations = [
        UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), b"pw")
        for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)
    ]
    code, text = _error(admin.alter_user_scram_credentials(alterations)[user])
    assert code == KafkaError.DUPLICATE_RESOURCE
    assert text == "A user credential cannot be altered twice in the same request"


def _can_log_in(secure: SecureBroker, user: str, password: str) -> bool:
    errors: list[KafkaError] = []
    producer = Producer({
        "bootstrap.servers": secure.listeners["SASL_PLAINTEXT"],
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password, "log_level": 0,
        "error_cb": errors.append,
    })  # fmt: skip
    try:
        producer.list_topics(timeout=10)
    except KafkaException:
        return False
    return not any(e.code() == KafkaError._AUTHENTICATION for e in errors)


def test_a_new_credential_works_at_once_and_a_deleted_one_stops_working(
    secure: SecureBroker,
) -> None:
    admin = secure.admin()
    user = f"u-{uuid.uuid4().hex[:6]}"
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upsert = UserScramCredentialUpsertion(user, info, b"first-password")
    admin.alter_user_scram_credentials([upsert])[user].result(30)
    assert _can_log_in(secure, user, "first-password")
    changed = UserScramCredentialUpsertion(user, info, b"second-password")
    admin.alter_user_scram_credentials([changed])[user].result(30)
    assert not _can_log_in(secure, user, "first-password")
    assert _can_log_in(secure, user, "second-password")
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])[user].result(30)
    assert not _can_log_in(secure, user, "second-password")
