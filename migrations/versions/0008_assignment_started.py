"""assignment.started_at: when a person took on a role (a cell's silence is measured from its first secretary)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): on SQLite a batch "move and copy" would drop the old
    # table, and with foreign keys on that would delete rows pointing at it.
    op.add_column('assignment', sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
    # Existing roles: taken on when the person registered (the best the data knows).
    op.execute("UPDATE assignment SET started_at = (SELECT person.registered_at FROM person "
               "WHERE person.id = assignment.person_id)")


def downgrade() -> None:
    op.drop_column('assignment', 'started_at')
