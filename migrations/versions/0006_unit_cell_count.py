"""unit.cell_count: the cells of each unit's subtree, for weekly reporting rates

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 14:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE … ADD COLUMN (a constant default): on SQLite a batch "move and copy" would
    # drop the old table, and with foreign keys on that deletes every village with it.
    op.add_column('unit', sa.Column('cell_count', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                    server_default='0', nullable=False))
    # Existing trees: each unit counts the cells in its path range ("/1/5/" … "/1/50").
    op.execute(
        "UPDATE unit SET cell_count = (SELECT count(*) FROM unit AS cell WHERE cell.kind = 'cell' "
        "AND cell.path >= unit.path AND cell.path < substr(unit.path, 1, length(unit.path) - 1) || '0')"
    )


def downgrade() -> None:
    op.drop_column('unit', 'cell_count')
