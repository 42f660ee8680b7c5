"""The broker's Prometheus metrics, named as Apache Kafka's look through the Prometheus JMX
exporter (``kafka_server_brokertopicmetrics_bytesin_total{topic}``, ...) and, for offsets and
consumer lag, as kafka-exporter reports them (``kafka_consumergroup_lag``); docs/metrics.md
lists them all with the Kafka metric each follows.

The hot path only adds to plain integers: one ``TopicMetrics`` per topic, updated once per
partition of a produce or fetch request (never per record), and one ``_ApiMetrics`` per API
key, updated once per request. prometheus_client's own metric objects take a lock for every
increment; here nothing is locked, because everything, scrapes included (``metrics_http``),
runs on the broker's event loop. Gauges (log sizes, groups, lag) are read from the broker's
state when Prometheus asks, so they cost nothing between scrapes.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nerve.protocol import codec

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from nerve.broker.server import Broker

# Request latency buckets in milliseconds (Kafka's TotalTimeMs is in ms): most requests take
# well under one, long-polling fetches up to fetch.max.wait.ms (500 by default).
LATENCY_BUCKETS_MS = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0, 30000.0,
)  # fmt: skip


# Kafka's ConsumerGroupState names for groups of the consumer protocol (KIP-848).
_CONSUMER_GROUP_STATES = ("Empty", "Assigning", "Reconciling", "Stable", "Dead")


class TopicMetrics:
    """Kafka's BrokerTopicMetrics of one topic, as running totals."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "failed_fetch_requests",
        "failed_produce_requests",
        "fetch_requests",
        "messages_in",
        "produce_requests",
    )

    def __init__(self) -> None:
        self.bytes_in = 0
        self.messages_in = 0
        self.bytes_out = 0
        self.produce_requests = 0
        self.failed_produce_requests = 0
        self.fetch_requests = 0
        self.failed_fetch_requests = 0


class _ApiMetrics:
    """Kafka's RequestMetrics of one API: requests by version, and a latency histogram."""

    __slots__ = ("buckets", "total_ms", "versions")

    def __init__(self) -> None:
        self.versions: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # the last one is +Inf
        self.total_ms = 0.0


class BrokerMetrics:
    """Running totals the handlers add to, and a prometheus_client collector over the broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.topics: dict[str, TopicMetrics] = {}
        self.apis: dict[int, _ApiMetrics] = {}

    # -- the hot path ---------------------------------------------------------------------

    def topic(self, name: str) -> TopicMetrics:
        found = self.topics.get(name)
        if found is None:
            found = self.topics[name] = TopicMetrics()
        return found

    def request_done(self, api_key: int, version: int, seconds: float) -> None:
        """One request of ``api_key`` answered (or, for acks=0, handled) ``seconds`` after its
        last byte arrived."""
        api = self.apis.get(api_key)
        if api is None:
            api = self.apis[api_key] = _ApiMetrics()
        versions = api.versions
        versions[version] = versions.get(version, 0) + 1
        ms = seconds * 1000.0
        api.buckets[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        api.total_ms += ms

    def fetched(self, served: list[tuple[str, int, int, int]]) -> None:
        """A fetch response goes out: (topic, bytes, partitions, failed partitions) by topic."""
        topics = self.topics
        for name, size, partitions, failed in served:
            found = topics.get(name)
            if found is None:
                found = topics[name] = TopicMetrics()
            found.bytes_out += size
            found.fetch_requests += partitions
            found.failed_fetch_requests += failed

    # -- prometheus_client's Collector protocol --------------------------------------------

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        broker = self.broker
        topics = broker.topics.topics
        for gone in [name for name in self.topics if name not in topics]:
            del self.topics[gone]  # Kafka drops a deleted topic's metrics too

        def per_topic(name: str, help_text: str, attribute: str) -> CounterMetricFamily:
            family = CounterMetricFamily(
                f"kafka_server_brokertopicmetrics_{name}", help_text, labels=("topic",)
            )
            for topic, counters in sorted(self.topics.items()):
                family.add_metric((topic,), getattr(counters, attribute))
            return family

        yield per_topic("bytesin", "Bytes of record batches appended (BytesInPerSec).", "bytes_in")
        yield per_topic("messagesin", "Records appended (MessagesInPerSec).", "messages_in")
        yield per_topic(
            "bytesout", "Bytes of record batches fetched (BytesOutPerSec).", "bytes_out"
        )
        yield per_topic(
            "totalproducerequests",
            "Partitions in produce requests (TotalProduceRequestsPerSec).",
            "produce_requests",
        )
        yield per_topic(
            "failedproducerequests",
            "Partitions of produce requests answered with an error (FailedProduceRequestsPerSec).",
            "failed_produce_requests",
        )
        yield per_topic(
            "totalfetchrequests",
            "Partitions in fetch responses (TotalFetchRequestsPerSec).",
            "fetch_requests",
        )
        yield per_topic(
            "failedfetchrequests",
            "Partitions of fetch responses with an error (FailedFetchRequestsPerSec).",
            "failed_fetch_requests",
        )

        requests = CounterMetricFamily(
            "kafka_network_requestmetrics_requests",
            "Requests by API and version (RequestsPerSec).",
            labels=("request", "version"),
        )
        latency = HistogramMetricFamily(
            "kafka_network_requestmetrics_totaltimems",
            "Milliseconds from a request's last byte to its response (TotalTimeMs).",
            labels=("request",),
        )
        bounds = [str(b) for b in LATENCY_BUCKETS_MS] + ["+Inf"]
        for api_key, api in sorted(self.apis.items()):
            name = _api_name(api_key, max(api.versions))
            for version, count in sorted(api.versions.items()):
                requests.add_metric((name, str(version)), count)
            cumulative, running = [], 0
            for bound, count in zip(bounds, api.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric((name,), cumulative, api.total_ms)
        yield requests
        yield latency

        yield _gauge(
            "kafka_server_socket_server_metrics_connection_count",
            "Open client connections (socket-server-metrics connection-count).",
            value=len(broker.connections),
        )

        yield from self._collect_logs()
        yield from self._collect_groups()
        yield from self._collect_transactions()

    def _collect_logs(self) -> Iterator[Metric]:
        topics = sorted(self.broker.topics.topics.items())
        partition_count = sum(len(t.partitions) for _, t in topics)
        for name, help_text, value in (
            ("kafka_controller_kafkacontroller_globaltopiccount", "Topics (GlobalTopicCount).",
             len(topics)),
            ("kafka_controller_kafkacontroller_globalpartitioncount",
             "Partitions (GlobalPartitionCount).", partition_count),
            ("kafka_server_replicamanager_partitioncount",
             "Partitions on this broker (ReplicaManager PartitionCount).", partition_count),
            ("kafka_server_replicamanager_leadercount",
             "Partitions this broker leads (ReplicaManager LeaderCount).", partition_count),
            ("kafka_brokers", "Brokers in the cluster (kafka-exporter).", 1),
        ):  # fmt: skip
            yield _gauge(name, help_text, value=value)
        labels = ("topic", "partition")
        size = _gauge(
            "kafka_log_log_size", "Bytes of the partition's segments (Log Size).", labels=labels
        )
        end = _gauge(
            "kafka_log_log_logendoffset",
            "The partition's log end offset (Log LogEndOffset).",
            labels=labels,
        )
        start = _gauge(
            "kafka_log_log_logstartoffset",
            "The partition's log start offset (Log LogStartOffset).",
            labels=labels,
        )
        segments = _gauge(
            "kafka_log_log_numlogsegments",
            "Segments of the partition (Log NumLogSegments).",
            labels=labels,
        )
        current = _gauge(
            "kafka_topic_partition_current_offset",
            "The partition's high watermark (kafka-exporter).",
            labels=labels,
        )
        oldest = _gauge(
            "kafka_topic_partition_oldest_offset",
            "The partition's log start offset (kafka-exporter).",
            labels=labels,
        )
        partitions = _gauge(
            "kafka_topic_partitions", "Partitions of the topic (kafka-exporter).", ("topic",)
        )
        for name, topic in topics:
            partitions.add_metric((name,), len(topic.partitions))
            for partition in topic.partitions:
                log = partition.log
                key = (name, str(partition.index))
                log_end, log_start = log.log_end_offset, log.log_start_offset
                size.add_metric(key, log.size_bytes)
                end.add_metric(key, log_end)
                start.add_metric(key, log_start)
                segments.add_metric(key, log.segment_count)
                current.add_metric(key, log_end)
                oldest.add_metric(key, log_start)
        yield from (size, end, start, segments, partitions, current, oldest)

    def _collect_groups(self) -> Iterator[Metric]:
        from nerve.broker.groups.group import GroupState

        broker = self.broker
        groups = sorted(broker.groups.groups.items())
        by_state = dict.fromkeys(GroupState, 0)
        by_protocol = {"classic": 0, "consumer": 0}
        consumer_states = dict.fromkeys(_CONSUMER_GROUP_STATES, 0)
        offsets = 0
        for _, group in groups:
            offsets += len(group.offsets)
            by_protocol[group.group_type] += 1
            if group.consumer is not None:
                consumer_states[group.consumer.state()] += 1
            else:
                by_state[group.state] += 1
        prefix = "kafka_coordinator_group_groupmetadatamanager_"
        yield _gauge(
            prefix + "numgroups", "Groups of both protocols (NumGroups).", value=len(groups)
        )
        for state, count in by_state.items():
            # NumGroupsStable, NumGroupsPreparingRebalance, ...: classic groups, one metric per
            # state, as Kafka 4's coordinator still reports them.
            yield _gauge(
                f"{prefix}numgroups{state.value.lower()}",
                f"Classic groups in {state.value} (NumGroups{state.value}).",
                value=count,
            )
        yield _gauge(prefix + "numoffsets", "Committed offsets (NumOffsets).", value=offsets)
        family = _gauge(
            "kafka_server_group_coordinator_metrics_group_count",
            "Groups by protocol (group-coordinator-metrics group-count).",
            ("protocol",),
        )
        for protocol, count in by_protocol.items():
            family.add_metric((protocol,), count)
        yield family
        family = _gauge(
            "kafka_server_group_coordinator_metrics_consumer_group_count",
            "Consumer-protocol (KIP-848) groups by state "
            "(group-coordinator-metrics consumer-group-count).",
            ("state",),
        )
        for state_name, count in consumer_states.items():
            family.add_metric((state_name,), count)
        yield family

        # kafka-exporter's consumer group metrics: for each topic a group has committed
        # offsets on, every partition of the topic; one without a commit shows -1 for both
        # offset and lag (kafka-exporter's way of letting an alert see it) and is left out of
        # the sums.
        labels = ("consumergroup", "topic", "partition")
        current = _gauge(
            "kafka_consumergroup_current_offset",
            "The group's committed offset (kafka-exporter).",
            labels=labels,
        )
        lag = _gauge(
            "kafka_consumergroup_lag",
            "High watermark minus the committed offset (kafka-exporter).",
            labels=labels,
        )
        current_sum = _gauge(
            "kafka_consumergroup_current_offset_sum",
            "Committed offsets of the topic summed (kafka-exporter).",
            labels=labels[:2],
        )
        lag_sum = _gauge(
            "kafka_consumergroup_lag_sum",
            "Lag of the topic's partitions summed (kafka-exporter).",
            labels=labels[:2],
        )
        members = _gauge(
            "kafka_consumergroup_members", "Members of the group (kafka-exporter).", labels[:1]
        )
        topics = broker.topics.topics
        for group_id, group in groups:
            members.add_metric(
                (group_id,), len(group.consumer.members if group.consumer else group.members)
            )
            committed: dict[str, dict[int, int]] = {}
            for (topic_name, index), commit in group.offsets.items():
                committed.setdefault(topic_name, {})[index] = commit.offset
            for topic_name, by_partition in sorted(committed.items()):
                topic = topics.get(topic_name)
                if topic is None:
                    continue  # deleted since: nothing to lag behind
                offset_total = lag_total = 0
                for partition in topic.partitions:
                    key = (group_id, topic_name, str(partition.index))
                    offset = by_partition.get(partition.index, -1)
                    if offset < 0:
                        current.add_metric(key, -1)
                        lag.add_metric(key, -1)
                        continue
                    behind = partition.log.log_end_offset - offset
                    current.add_metric(key, offset)
                    lag.add_metric(key, behind)
                    offset_total += offset
                    lag_total += behind
                current_sum.add_metric((group_id, topic_name), offset_total)
                lag_sum.add_metric((group_id, topic_name), lag_total)
        yield from (current, current_sum, lag, lag_sum, members)

    def _collect_transactions(self) -> Iterator[Metric]:
        from nerve.broker.txn.coordinator import TxnState

        by_state = dict.fromkeys(TxnState, 0)
        for txn in self.broker.transactions.transactions.values():
            by_state[txn.state] += 1
        family = _gauge(
            "nerve_broker_transactions",
            "Transactional ids known to the transaction coordinator, by state (Kafka has no "
            "such metric; kafka-transactions.sh list shows the same).",
            labels=("state",),
        )
        for state, count in by_state.items():
            family.add_metric((state.wire_name,), count)
        yield family


def _gauge(
    name: str, help_text: str, labels: tuple[str, ...] = (), value: float | None = None
) -> Any:
    """A gauge family; with ``value``, its one unlabelled sample."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, help_text, labels=labels)
    if value is not None:
        family.add_metric((), value)
    return family


@functools.cache
def _api_name(api_key: int, version: int) -> str:
    """Kafka's name of an API (``Produce``, ``FindCoordinator``), from kio's request class."""
    try:
        module = codec.schema_module(api_key, version, False)
    except Exception:  # a scrape must answer: an API kio cannot name is named by its key
        return str(api_key)
    for name in dir(module):
        value = getattr(module, name)
        own = isinstance(value, type) and value.__module__ == module.__name__
        if own and name.endswith("Request") and name != "Request":
            return name.removesuffix("Request")
    return str(api_key)
