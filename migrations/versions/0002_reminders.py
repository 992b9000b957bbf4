"""reminders: weekly check-ins, the sent-log, stored schedules and run records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:38:11.772592
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('weekly_run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_weekly_run')),
    sa.UniqueConstraint('kind', 'week_start', name=op.f('uq_weekly_run_kind'))
    )
    op.create_table('reminder_schedule',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('weekday', sa.String(length=3), nullable=False),
    sa.Column('at', sa.String(length=5), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['person.id'], name=op.f('fk_reminder_schedule_updated_by_id_person'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_reminder_schedule'))
    )
    op.create_table('sent_reminder',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('person_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_sent_reminder_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sent_reminder')),
    sa.UniqueConstraint('person_id', 'kind', 'week_start', name=op.f('uq_sent_reminder_person_id'))
    )
    op.create_table('weekly_check_in',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('unit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('person_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_weekly_check_in_person_id_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_weekly_check_in_unit_id_unit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_weekly_check_in')),
    sa.UniqueConstraint('unit_id', 'week_start', name=op.f('uq_weekly_check_in_unit_id'))
    )
    with op.batch_alter_table('weekly_check_in', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_weekly_check_in_unit_id'), ['unit_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('weekly_check_in', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_weekly_check_in_unit_id'))

    op.drop_table('weekly_check_in')
    op.drop_table('sent_reminder')
    op.drop_table('reminder_schedule')
    op.drop_table('weekly_run')
