"""The ``nerve`` command line."""
