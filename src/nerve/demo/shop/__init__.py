"""The shop: orders are an event-sourced aggregate per order, with the order saga taking each
through inventory (an aggregate per SKU reserving stock), payments (a payment per order) and
shipping (a shipment per order), compensating when stock or payment fails; projections keep
orders by status and per customer in SQLite. Two services added later use only what already
flows: reorder (low stock) and analysis (failed purchases). A driver sends the commands and
gets each decision back over Kafka.

Each module is one service (``nerve run src/nerve/demo/shop/orders.py``); ``events.py`` holds
the commands and events they share, ``ledger.py`` reads the history back for the check.
"""
