"""progress: a partial covering index of counted admissions for subtree counts and breakdowns

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.create_index(
            'ix_admission_counted',
            ['unit_path', 'admitted_on', 'sex', 'minority', 'youth_union', 'birth_year'],
            unique=False,
            sqlite_where=sa.text('withdrawn_at IS NULL'),
            postgresql_where=sa.text('withdrawn_at IS NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.drop_index('ix_admission_counted')
