"""Schema migrations (Alembic), shared by every backend."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool

from voxmeter.storage import is_postgres, split_pgbouncer_flag
from voxmeter.storage.base import SchemaNotCurrent


def sqlalchemy_url(url: str) -> str:
    """Our database URL in SQLAlchemy's spelling (it needs the driver named)."""
    url, _ = split_pgbouncer_flag(url)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _engine(url: str) -> Engine:
    # Never a prepared statement: these few statements gain nothing from one,
    # and behind PgBouncer in transaction mode one would break.
    connect_args = {"prepare_threshold": None} if is_postgres(url) else {}
    return create_engine(sqlalchemy_url(url), poolclass=pool.NullPool, connect_args=connect_args)


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "voxmeter.storage:migrations")
    config.attributes["engine"] = _engine(url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Bring the schema at ``url`` to the latest revision (a no-op when current)."""
    command.upgrade(_config(url), "head")


def downgrade(url: str, revision: str) -> None:
    """Take the schema at ``url`` back to ``revision`` (to run an earlier release)."""
    command.downgrade(_config(url), revision)


def ensure_current(url: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless the schema is at the latest revision."""
    current, head = current_revision(url), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"the database schema is at revision {current or 'none'}, this voxmeter "
            f"needs {head}: run `voxmeter db upgrade`"
        )
