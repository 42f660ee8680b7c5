"""nerve: an event-driven platform for Python teams.

Components (one folder each): ``protocol`` (Kafka wire protocol, no I/O), ``broker`` (the
embedded Kafka-compatible broker) and ``cli`` (the ``nerve`` command).
"""

__version__ = "0.1.0"
