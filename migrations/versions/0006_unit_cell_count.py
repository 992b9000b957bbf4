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
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cell_count', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      server_default=sa.text('0'), nullable=False))
    # Existing trees: each unit counts the cells in its path range ("/1/5/" … "/1/50").
    op.execute(
        "UPDATE unit SET cell_count = (SELECT count(*) FROM unit AS cell WHERE cell.kind = 'cell' "
        "AND cell.path >= unit.path AND cell.path < substr(unit.path, 1, length(unit.path) - 1) || '0')"
    )


def downgrade() -> None:
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('cell_count')
