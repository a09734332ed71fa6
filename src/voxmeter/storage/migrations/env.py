"""Alembic environment: voxmeter's migrations are plain SQL, run per dialect."""

from __future__ import annotations

from alembic import context

config = context.config
engine = config.attributes["engine"]  # made by voxmeter.storage.schema
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
