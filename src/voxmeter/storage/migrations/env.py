"""Alembic environment: voxmeter's migrations are plain SQL, run per dialect."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.attributes["sqlalchemy_url"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
