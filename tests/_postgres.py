"""The test rig's PostgreSQL: nerve.connect.local_postgres, which the CDC demo uses too."""

from nerve.connect.local_postgres import PostgresError, PostgresProcess, bindir, known_settings

_bindir, _known_settings = bindir, known_settings  # the names tests import

__all__ = ["PostgresError", "PostgresProcess", "_bindir", "_known_settings"]
