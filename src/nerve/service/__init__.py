"""nerve's framework for event-driven services: typed events in CloudEvents envelopes,
handlers run by a consumer group named after the service, retries and dead letters, tables.

Built on confluent-kafka and never on the broker's internals, so the same services run against
nerve's broker or any Kafka cluster (``NERVE_BOOTSTRAP_SERVERS``).
"""

from nerve.service.events import Event, Meta
from nerve.service.service import Service
from nerve.service.tables import Table

__all__ = ["Event", "Meta", "Service", "Table"]
