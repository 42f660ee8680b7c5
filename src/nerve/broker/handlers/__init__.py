"""Request handlers, one module per Kafka API family, found through a dispatch table.

A handler takes the broker, the request header and the decoded kio request, and returns the
response body, an awaitable of it (long polls, fsync waits), or None when Kafka sends no
response (acks=0 produce).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from nerve.broker.handlers import (
    acls,
    admin,
    api_versions,
    configs,
    consumer_groups,
    fetch,
    groups,
    log_dirs,
    metadata,
    offsets,
    produce,
    quotas,
    replication,
    sasl,
    share_groups,
    topic_partitions,
    txn,
)


class ApiHandler(NamedTuple):
    handle: Callable[..., Any]
    min_version: int
    max_version: int


# API key -> handler and the versions nerve answers (advertised in ApiVersions).
HANDLERS: dict[int, ApiHandler] = {
    0: ApiHandler(produce.handle_produce, 3, 13),
    1: ApiHandler(fetch.handle_fetch, 4, 18),
    2: ApiHandler(offsets.handle_list_offsets, 1, 11),
    3: ApiHandler(metadata.handle_metadata, 0, 13),
    8: ApiHandler(groups.handle_offset_commit, 2, 10),
    9: ApiHandler(groups.handle_offset_fetch, 1, 10),
    10: ApiHandler(groups.handle_find_coordinator, 0, 6),
    11: ApiHandler(groups.handle_join_group, 0, 9),
    12: ApiHandler(groups.handle_heartbeat, 0, 4),
    13: ApiHandler(groups.handle_leave_group, 0, 5),
    14: ApiHandler(groups.handle_sync_group, 0, 5),
    15: ApiHandler(groups.handle_describe_groups, 0, 6),
    16: ApiHandler(groups.handle_list_groups, 0, 5),
    17: ApiHandler(sasl.handle_sasl_handshake, 0, 1),
    18: ApiHandler(api_versions.handle_api_versions, 0, 4),
    19: ApiHandler(admin.handle_create_topics, 2, 7),
    20: ApiHandler(admin.handle_delete_topics, 1, 6),
    21: ApiHandler(offsets.handle_delete_records, 0, 2),
    22: ApiHandler(txn.handle_init_producer_id, 0, 5),
    23: ApiHandler(offsets.handle_offset_for_leader_epoch, 2, 4),
    24: ApiHandler(txn.handle_add_partitions_to_txn, 0, 3),
    25: ApiHandler(txn.handle_add_offsets_to_txn, 0, 4),
    26: ApiHandler(txn.handle_end_txn, 0, 4),
    27: ApiHandler(txn.handle_write_txn_markers, 1, 2),
    28: ApiHandler(txn.handle_txn_offset_commit, 0, 4),
    29: ApiHandler(acls.handle_describe_acls, 1, 3),
    30: ApiHandler(acls.handle_create_acls, 1, 3),
    31: ApiHandler(acls.handle_delete_acls, 1, 3),
    32: ApiHandler(configs.handle_describe_configs, 1, 4),
    33: ApiHandler(configs.handle_alter_configs, 0, 2),
    35: ApiHandler(log_dirs.handle_describe_log_dirs, 1, 5),
    36: ApiHandler(sasl.handle_sasl_authenticate, 0, 2),
    37: ApiHandler(admin.handle_create_partitions, 0, 3),
    42: ApiHandler(groups.handle_delete_groups, 0, 2),
    43: ApiHandler(replication.handle_elect_leaders, 0, 2),
    44: ApiHandler(configs.handle_incremental_alter_configs, 0, 1),
    45: ApiHandler(replication.handle_alter_partition_reassignments, 0, 1),
    46: ApiHandler(replication.handle_list_partition_reassignments, 0, 0),
    47: ApiHandler(groups.handle_offset_delete, 0, 0),
    48: ApiHandler(quotas.handle_describe_client_quotas, 0, 1),
    49: ApiHandler(quotas.handle_alter_client_quotas, 0, 1),
    50: ApiHandler(acls.handle_describe_user_scram_credentials, 0, 0),
    51: ApiHandler(acls.handle_alter_user_scram_credentials, 0, 0),
    60: ApiHandler(admin.handle_describe_cluster, 0, 2),
    61: ApiHandler(txn.handle_describe_producers, 0, 0),
    65: ApiHandler(txn.handle_describe_transactions, 0, 0),
    66: ApiHandler(txn.handle_list_transactions, 0, 2),
    68: ApiHandler(consumer_groups.handle_consumer_group_heartbeat, 0, 1),
    69: ApiHandler(consumer_groups.handle_consumer_group_describe, 0, 1),
    74: ApiHandler(configs.handle_list_config_resources, 0, 1),
    75: ApiHandler(topic_partitions.handle_describe_topic_partitions, 0, 0),
    76: ApiHandler(share_groups.handle_share_group_heartbeat, 1, 1),
    77: ApiHandler(share_groups.handle_share_group_describe, 1, 1),
    78: ApiHandler(share_groups.handle_share_fetch, 1, 2),
    79: ApiHandler(share_groups.handle_share_acknowledge, 1, 2),
    90: ApiHandler(share_groups.handle_describe_share_group_offsets, 0, 1),
    91: ApiHandler(share_groups.handle_alter_share_group_offsets, 0, 0),
    92: ApiHandler(share_groups.handle_delete_share_group_offsets, 0, 0),
}

api_versions.register(HANDLERS)
