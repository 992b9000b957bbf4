"""target.starts_on / ends_on: the days a target measures (a term runs from the congress, five years)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:30:00
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The default [bot] term_start when this was written (core/config.py): a migration keeps its own copy.
TERM_START = (7, 1)


def days_of(start_year: int, end_year: int) -> tuple[date, date]:
    """Return the days of a stored period: a calendar year, or a term from TERM_START to the day before it."""
    if start_year == end_year:
        return date(start_year, 1, 1), date(start_year, 12, 31)
    return date(start_year, *TERM_START), date(end_year, *TERM_START) - timedelta(days=1)


def upgrade() -> None:
    op.add_column('target', sa.Column('starts_on', sa.Date(), nullable=True))
    op.add_column('target', sa.Column('ends_on', sa.Date(), nullable=True))
    conn = op.get_bind()
    target = sa.table('target', sa.column('id', sa.Integer), sa.column('start_year', sa.Integer),
                      sa.column('end_year', sa.Integer), sa.column('starts_on', sa.Date), sa.column('ends_on', sa.Date))
    rows = conn.execute(sa.select(target.c.id, target.c.start_year, target.c.end_year)).all()
    if rows:
        conn.execute(
            target.update().where(target.c.id == sa.bindparam('row_id'))
            .values(starts_on=sa.bindparam('first'), ends_on=sa.bindparam('last')),
            [dict(zip(('first', 'last'), days_of(start, end)), row_id=row_id) for row_id, start, end in rows],
        )
    # Nothing refers to target, so SQLite's batch copy of the table loses no rows.
    with op.batch_alter_table('target', schema=None) as batch_op:
        batch_op.alter_column('starts_on', existing_type=sa.Date(), nullable=False)
        batch_op.alter_column('ends_on', existing_type=sa.Date(), nullable=False)
        batch_op.create_check_constraint(batch_op.f('ck_target_days_order'), 'ends_on >= starts_on')


def downgrade() -> None:
    with op.batch_alter_table('target', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_target_days_order'), type_='check')
        batch_op.drop_column('ends_on')
        batch_op.drop_column('starts_on')
