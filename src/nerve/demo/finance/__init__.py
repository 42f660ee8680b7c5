"""The personal-finance system: transactions are recorded, balances kept, low balances
alerted and mailed, and fraud flagged by a service added later without touching the others.

Each module is one service (``nerve run src/nerve/demo/finance/alerts.py`` or, from a checkout,
``nerve run examples/finance/alerts.py``); ``events.py`` holds the contracts they share.
"""
