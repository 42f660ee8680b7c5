"""Change data capture as a demo: a "legacy" warehouse application keeps stock in its own
PostgreSQL database, which no service may query; ``nerve cdc postgres`` brings every row
change into Kafka (Debezium's envelope), and the ``warehouse`` service turns the changes into
events of its own (stock levels, out-of-stock alerts) that other services can use.

``warehouse.py`` is the service (``nerve run src/nerve/demo/cdc/warehouse.py``); ``demo.py``
starts the platform, the database, the capture and the service, and drives the legacy app.
"""
