"""The shop: orders are an event-sourced aggregate per order (placed, paid, cancelled), the
inventory one per SKU (stock reserved and released), and a projection keeps the orders by
status in SQLite. A driver sends the commands and gets each decision back over Kafka.

Each module is one service (``nerve run src/nerve/demo/shop/orders.py``); ``events.py`` holds
the commands and events they share.
"""
