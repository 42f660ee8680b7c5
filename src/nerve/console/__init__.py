"""The web console: see, decode, trace and fix the events of a running system in a browser.

A client app like any other: it talks to Kafka through confluent-kafka (AdminClient, Consumer,
Producer) and to the schema registry through its REST API, never to broker internals, so it
works against Apache Kafka and any Confluent-compatible registry as well as against nerve.
Pages are rendered on the server (Starlette and Jinja2); htmx, shipped in ``static/``, adds the
little interactivity there is (no Node build). One module per concept: ``topics``,
``messages`` (browse, tail, produce), ``decoding``, ``filters`` and ``scans`` (the bounded
filter scan), ``groups``, ``schemas``, ``lineage`` (the catalog), ``trace``, ``dead_letters``,
``health``; ``app`` wires them into routes and ``server`` serves them.
"""

from nerve.console.config import ConsoleConfig

__all__ = ["ConsoleConfig"]
