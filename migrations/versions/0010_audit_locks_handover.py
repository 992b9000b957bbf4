"""audit_entry (never updated or deleted), unit_lock, assignment.ended_at, invite hand-over columns

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# A migration keeps its own copy of the triggers (models.entities makes the same for create_all).
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are never updated'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are never deleted'); END",
)
POSTGRESQL_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION audit_entry_immutable() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit entries are never updated or deleted'; END $$",
    "CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_immutable()",
)
PATH = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'audit_entry',
        sa.Column('id', ID, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('person_id', ID, nullable=True),
        sa.Column('channel', sa.Enum('chat', 'cli', 'file', name='auditchannel', native_enum=False, length=16),
                  nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=32), nullable=False),
        sa.Column('subject_id', ID, nullable=True),
        sa.Column('unit_id', ID, nullable=True),
        sa.Column('unit_path', PATH, nullable=True),
        sa.Column('field', sa.String(length=32), nullable=True),
        sa.Column('old_value', sa.Text(), nullable=True),
        sa.Column('new_value', sa.Text(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_audit_entry_person_id_person')),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_audit_entry_unit_id_unit')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    )
    op.create_index('ix_audit_entry_path_at', 'audit_entry', ['unit_path', 'at'], unique=False)
    op.create_index('ix_audit_entry_subject', 'audit_entry', ['subject', 'subject_id'], unique=False)
    triggers = SQLITE_TRIGGERS if op.get_bind().dialect.name == 'sqlite' else POSTGRESQL_TRIGGERS
    for statement in triggers:
        op.execute(statement)
    op.create_table(
        'unit_lock',
        sa.Column('unit_id', ID, autoincrement=False, nullable=False),
        sa.Column('closed_until', sa.Date(), nullable=False),
        sa.Column('set_by_id', ID, nullable=True),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['set_by_id'], ['person.id'], name=op.f('fk_unit_lock_set_by_id_person')),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_unit_lock_unit_id_unit')),
        sa.PrimaryKeyConstraint('unit_id', name=op.f('pk_unit_lock')),
    )
    # Plain ADD COLUMNs (see 0008: a batch copy of a referenced table would lose rows on SQLite).
    op.add_column('assignment', sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True))
    # Nothing refers to invite, so SQLite's batch copy (needed for its foreign keys) loses no rows.
    with op.batch_alter_table('invite', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_id', ID, nullable=True))
        batch_op.add_column(sa.Column('replaces_id', ID, nullable=True))
        batch_op.add_column(sa.Column('note', sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_invite_created_by_id_person'), 'person', ['created_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_invite_replaces_id_assignment'), 'assignment', ['replaces_id'],
                                    ['id'])

def downgrade() -> None:
    with op.batch_alter_table('invite', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invite_replaces_id_assignment'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_invite_created_by_id_person'), type_='foreignkey')
        batch_op.drop_column('note')
        batch_op.drop_column('replaces_id')
        batch_op.drop_column('created_by_id')
    op.drop_column('assignment', 'ended_at')
    op.drop_table('unit_lock')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION IF EXISTS audit_entry_immutable() CASCADE")
    op.drop_index('ix_audit_entry_subject', table_name='audit_entry')
    op.drop_index('ix_audit_entry_path_at', table_name='audit_entry')
    op.drop_table('audit_entry')
