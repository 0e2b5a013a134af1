"""Alembic environment: online only, on the connection handed over by ``Store.upgrade()``.

svarstid builds its Alembic ``Config`` in code and passes an open SQLAlchemy connection in
``config.attributes["connection"]``; there is no alembic.ini and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from monitor.adapters.sql_schema import metadata


def run_migrations_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations get copy-and-move batches.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("svarstid migrations run online only (Store.upgrade)")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("no connection in config.attributes['connection']; use Store.upgrade")
    run_migrations_online(connection)


main()
