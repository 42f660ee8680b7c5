"""``nerve cdc doctor``: is this PostgreSQL database ready for change data capture (Debezium or
logical decoding of one's own), and if not, what exactly to change. Each check reads the
server's own settings and catalogs; nothing is changed, and the one temporary replication slot
it creates to try an output plugin is dropped with its session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK, WARN, FIX = "ok", "warn", "FIX"


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN (works, but mind it) or FIX (CDC cannot work until changed)
    check: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4} {self.check}: {self.detail}"
        return f"{text}\n     -> {self.fix}" if self.fix else text


def _one(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def examine(conn: Any, plugins: tuple[str, ...] = ("pgoutput", "wal2json")) -> list[Finding]:
    """The findings for the database ``conn`` (a psycopg 3 connection, autocommit) is on."""
    found: list[Finding] = []
    version = int(_one(conn, "SHOW server_version_num"))
    if version < 100000:
        found.append(
            Finding(FIX, "version", f"PostgreSQL {version}", "logical decoding needs 10 or later")
        )
    else:
        found.append(Finding(OK, "version", f"PostgreSQL {version // 10000}"))

    wal_level = _one(conn, "SHOW wal_level")
    if wal_level == "logical":
        found.append(Finding(OK, "wal_level", "logical"))
    else:
        found.append(
            Finding(
                FIX,
                "wal_level",
                f"{wal_level} (the WAL lacks what logical decoding reads)",
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
            )
        )

    for setting, view in (
        ("max_replication_slots", "SELECT count(*) FROM pg_replication_slots"),
        ("max_wal_senders", "SELECT count(*) FROM pg_stat_replication"),
    ):
        limit, used = int(_one(conn, f"SHOW {setting}")), int(_one(conn, view))
        if used >= limit:
            found.append(
                Finding(
                    FIX,
                    setting,
                    f"{used} of {limit} in use: none left for a connector",
                    f"ALTER SYSTEM SET {setting} = {max(limit * 2, 4)}; then restart PostgreSQL",
                )
            )
        else:
            found.append(Finding(OK, setting, f"{used} of {limit} in use"))

    user, superuser, replication = conn.execute(
        "SELECT rolname, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if superuser or replication:
        found.append(Finding(OK, "role", f"{user} may replicate"))
    else:
        found.append(
            Finding(
                FIX,
                "role",
                f"{user} has neither REPLICATION nor SUPERUSER",
                f'ALTER ROLE "{user}" WITH REPLICATION;  (as a superuser)',
            )
        )

    if wal_level == "logical" and (superuser or replication):
        for plugin in plugins:
            found.append(_try_plugin(conn, plugin))

    for slot, plugin, retained in conn.execute(
        "SELECT slot_name, plugin,"
        " pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))"
        " FROM pg_replication_slots WHERE NOT active AND database = current_database()"
        " ORDER BY slot_name"
    ).fetchall():
        found.append(
            Finding(
                WARN,
                "slot",
                f"{slot} ({plugin}) is inactive and holds {retained} of WAL",
                f"if its consumer is gone: SELECT pg_drop_replication_slot('{slot}');",
            )
        )

    for schema, table in conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND c.relreplident = 'd'"
        " AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
        " ORDER BY 1, 2"
    ).fetchall():
        found.append(
            Finding(
                WARN,
                "table",
                f"{schema}.{table} has no primary key: its updates and deletes carry no row",
                f'add a primary key, or ALTER TABLE "{schema}"."{table}" REPLICA IDENTITY FULL;',
            )
        )
    return found


def _try_plugin(conn: Any, plugin: str) -> Finding:
    """Create a temporary slot with the output plugin (dropped when the session ends)."""
    import psycopg

    try:
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, %s, true)",
            (f"nerve_doctor_{plugin}", plugin),
        )
        conn.execute("SELECT pg_drop_replication_slot(%s)", (f"nerve_doctor_{plugin}",))
    except psycopg.Error as exc:
        message = (exc.diag.message_primary or str(exc)).strip()
        fix = "apt-get install postgresql-<version>-wal2json" if plugin == "wal2json" else ""
        if "may not be used as an output plugin" in message:
            # PostgreSQL 15.20 / 16.11 / 17.7 and later let REPLICATION roles use only the
            # plugins that the superuser-only setting output_plugin_libraries lists.
            allowed = _setting(conn, "output_plugin_libraries") or "pgoutput, test_decoding"
            fix = (
                f"ALTER SYSTEM SET output_plugin_libraries = '{allowed}, {plugin}';"
                " SELECT pg_reload_conf();"
            )
        level = WARN if plugin == "wal2json" else FIX  # Debezium needs only pgoutput
        return Finding(level, f"plugin {plugin}", message, fix)
    return Finding(OK, f"plugin {plugin}", "a logical slot can use it")


def _setting(conn: Any, name: str) -> str | None:
    """A server setting's value, or None where this server version has no such setting."""
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return row[0] if row else None
