"""Alembic environment: the URL comes from the project's config (see models.db.alembic_config)."""

from __future__ import annotations

from alembic import context

from models import Base
from models.base import UTCDateTime
from models.db import create_sync_engine_for

target_metadata = Base.metadata


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render the project's UTC datetime as the plain column type it stores (no import of models)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one transaction on a live connection."""
    # The keys come from models.db.alembic_config (or ADMISSIONS_BOT_KEY): migration 0012 needs them.
    engine = create_sync_engine_for(context.config.get_main_option("sqlalchemy.url"),
                                    keys=context.config.attributes.get("keys"))
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, render_item=render_item
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
