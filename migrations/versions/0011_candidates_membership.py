"""candidate pipeline (candidate, candidate_stage), deadline_notice, admission ceremony/recognition/removal
dates, unit membership counts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

PATH = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAGE = sa.Enum('nguon', 'cam_tinh', 'lop', 'ho_so', 'tham_tra', 'chi_bo', 'dang_uy', name='stage',
                native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        'candidate',
        sa.Column('id', ID, nullable=False),
        sa.Column('unit_id', ID, nullable=False),
        sa.Column('unit_path', PATH, nullable=False),
        sa.Column('full_name', sa.String(length=120), nullable=False),
        sa.Column('name_key', sa.String(length=120), nullable=False),
        sa.Column('birth_year', ID, nullable=False),
        sa.Column('sex', sa.Enum('male', 'female', name='sex', native_enum=False, length=16), nullable=False),
        sa.Column('ethnicity', sa.String(length=60), nullable=True),
        sa.Column('minority', sa.Boolean(), nullable=False),
        sa.Column('youth_union', sa.Boolean(), nullable=True),
        sa.Column('mentor_name', sa.String(length=120), nullable=True),
        sa.Column('stage', STAGE, nullable=False),
        sa.Column('exit_reason', sa.Enum('di_lam_an_xa', 'xin_rut', 'khong_du_dk', name='exitreason',
                                         native_enum=False, length=16), nullable=True),
        sa.Column('exited_on', sa.Date(), nullable=True),
        sa.Column('admission_id', ID, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('added_ref', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['admission_id'], ['admission.id'], name=op.f('fk_candidate_admission_id_admission'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_candidate_unit_id_unit')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_candidate')),
        sa.UniqueConstraint('admission_id', name=op.f('uq_candidate_admission_id')),
        sa.UniqueConstraint('added_ref', name=op.f('uq_candidate_added_ref')),
    )
    op.create_index('ix_candidate_path_stage', 'candidate', ['unit_path', 'stage'], unique=False)
    op.create_index('ix_candidate_name_key', 'candidate', ['name_key', 'birth_year'], unique=False)
    op.create_index(op.f('ix_candidate_unit_id'), 'candidate', ['unit_id'], unique=False)
    op.create_table(
        'candidate_stage',
        sa.Column('id', ID, nullable=False),
        sa.Column('candidate_id', ID, nullable=False),
        sa.Column('stage', STAGE, nullable=False),
        sa.Column('reached_on', sa.Date(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by_id', ID, nullable=True),
        sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id'], name=op.f('fk_candidate_stage_candidate_id_candidate'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['person.id'], name=op.f('fk_candidate_stage_recorded_by_id_person'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_candidate_stage')),
    )
    op.create_index(op.f('ix_candidate_stage_candidate_id'), 'candidate_stage', ['candidate_id'], unique=False)
    op.create_table(
        'deadline_notice',
        sa.Column('id', ID, nullable=False),
        sa.Column('admission_id', ID, nullable=False),
        sa.Column('deadline', sa.String(length=32), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['admission_id'], ['admission.id'], name=op.f('fk_deadline_notice_admission_id_admission'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_notice')),
        sa.UniqueConstraint('admission_id', 'deadline', name=op.f('uq_deadline_notice_admission_id')),
    )
    # Plain ADD COLUMNs (see 0008: a batch copy of a referenced table would lose rows on SQLite).
    op.add_column('admission', sa.Column('ceremony_on', sa.Date(), nullable=True))
    op.add_column('admission', sa.Column('recognized_on', sa.Date(), nullable=True))
    op.add_column('admission', sa.Column('removed_on', sa.Date(), nullable=True))
    op.add_column('unit', sa.Column('members_full', ID, nullable=True))
    op.add_column('unit', sa.Column('members_probationary', ID, nullable=True))
    op.add_column('unit', sa.Column('members_as_of', sa.Date(), nullable=True))


def downgrade() -> None:
    for column in ('members_as_of', 'members_probationary', 'members_full'):
        op.drop_column('unit', column)
    for column in ('removed_on', 'recognized_on', 'ceremony_on'):
        op.drop_column('admission', column)
    op.drop_table('deadline_notice')
    op.drop_index(op.f('ix_candidate_stage_candidate_id'), table_name='candidate_stage')
    op.drop_table('candidate_stage')
    op.drop_index(op.f('ix_candidate_unit_id'), table_name='candidate')
    op.drop_index('ix_candidate_name_key', table_name='candidate')
    op.drop_index('ix_candidate_path_stage', table_name='candidate')
    op.drop_table('candidate')
