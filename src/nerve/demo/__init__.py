"""Runnable example systems built on nerve (``nerve demo NAME``)."""
