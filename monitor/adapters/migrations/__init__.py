"""Alembic migrations of the svarstid database, run by ``Store.upgrade()`` (no alembic.ini)."""
