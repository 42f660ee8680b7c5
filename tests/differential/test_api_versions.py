"""Which API versions nerve offers, against what Apache Kafka offers: every API and version a
Kafka broker answers clients with is offered by nerve too, or is listed below with the reason
(the same list is docs/compatibility.md's "API versions" table)."""

from __future__ import annotations

from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.index import api_key_map

from tests._broker import BrokerProcess
from tests._kafka import KAFKA_VERSION, KafkaProcess
from tests.broker._kio_client import KioClient

# API key -> (the highest version nerve offers, or None when it offers none; why).
ABSENT_OR_OLDER: dict[int, tuple[int | None, str]] = {
    18: (4, "ApiVersions v5 (KIP-1242) is not in kio; clients retry with v4"),
    24: (3, "AddPartitionsToTxn v4+ are broker-to-broker; clients send v3"),
    26: (4, "EndTxn v5 is transactions v2 (KIP-890 part 2), not offered"),
    28: (4, "TxnOffsetCommit v5 is transactions v2, v6 topic ids (not in kio)"),
    34: (None, "AlterReplicaLogDirs: one log directory"),
    38: (None, "delegation tokens: the security issue"),
    39: (None, "delegation tokens: the security issue"),
    40: (None, "delegation tokens: the security issue"),
    41: (None, "delegation tokens: the security issue"),
    42: (2, "DeleteGroups v3 (an error message) is not in kio"),
    55: (None, "DescribeQuorum: no KRaft quorum"),
    57: (None, "UpdateFeatures: no feature flags to finalize"),
    64: (None, "UnregisterBroker: one broker"),
    80: (None, "KRaft voters: no quorum"),
    81: (None, "KRaft voters: no quorum"),
    83: (None, "share group state: issue 19"),
    84: (None, "share group state: issue 19"),
    85: (None, "share group state: issue 19"),
    86: (None, "share group state: issue 19"),
    87: (None, "share group state: issue 19"),
    88: (None, "streams groups (KIP-1071): with issue 19"),
    89: (None, "streams groups (KIP-1071): with issue 19"),
    93: (None, "streams groups (KIP-1071): with issue 19"),
    94: (None, "UnregisterController: no controllers"),
}


def offered(bootstrap: str) -> dict[int, tuple[int, int]]:
    with KioClient(bootstrap) as client:
        response = client.call(
            ApiVersionsRequest(client_software_name="nerve-tests", client_software_version="1")
        )
    return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}


def test_nerve_offers_every_version_kafka_offers_or_says_why(
    kafka: KafkaProcess, nerve_for_diff: BrokerProcess
) -> None:
    theirs, ours = offered(kafka.bootstrap), offered(nerve_for_diff.bootstrap)
    # Against 4.4 the list is exact; against an older baseline nerve may offer more.
    exact = KAFKA_VERSION == "4.4.0"
    wrong = {}
    for key, (_, kafka_max) in sorted(theirs.items()):
        listed = ABSENT_OR_OLDER.get(key, (kafka_max, ""))[0]
        expected = None if listed is None else min(listed, kafka_max)
        got = ours.get(key, (None, None))[1]
        if got == expected or (not exact and None not in (got, expected) and got > expected):
            continue
        wrong[f"{key} {api_key_map.get(key, '?')}"] = (kafka_max, got, expected)
    assert wrong == {}, "(Kafka's max, nerve's max, expected) per API"
    assert set(ours) <= set(theirs), "nerve offers an API Kafka does not"
    if exact:
        # No entry for an API Kafka dropped or one whose newest version nerve now offers.
        stale = [
            key
            for key in ABSENT_OR_OLDER
            if key not in theirs or ours.get(key, (None, None))[1] == theirs[key][1]
        ]
        assert stale == []
