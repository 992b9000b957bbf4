"""Personal data sealed in place (AES-GCM), name keys as HMACs, key_check, start_attempt

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:00:00

Needs the key: models.db.migrate(url, keys) hands it over in Alembic's `config.attributes["keys"]`
(`python -m bot init` reads `[security] key_file` or ADMISSIONS_BOT_KEY, and creates the file when
neither exists); migrations/env.py attaches it to the migration's engine. Without one the upgrade
stops before changing anything.

Upgrade, in the migration's one transaction: the `key_check` and `start_attempt` tables; on
PostgreSQL the personal VARCHAR columns become TEXT (a sealed value is longer than the name; SQLite
never enforces declared lengths, so its tables are not rebuilt); every admitted person's and candidate's name and
ethnicity (and a candidate's mentor), every person's display name, every stored conversation draft and every audit value and
reason sealed with the key; name keys become HMAC-SHA-256(folded name, birth year); the check
value written. The audit trail's insert-only triggers are dropped and made again inside that same
transaction (models.keys.audit_triggers_lifted).

Downgrade opens everything again with the same key and writes it back in clear (name keys back to
the folded name), then drops the two tables: refused without the key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The personal VARCHAR columns as 0001 made them (PostgreSQL turns them to TEXT and back).
PERSONAL_VARCHARS = (("admission", "full_name", 120), ("admission", "ethnicity", 60), ("person", "display_name", 128),
                     ("candidate", "full_name", 120), ("candidate", "ethnicity", 60), ("candidate", "mentor_name", 120),
                     ("invite", "note", 200))


def _tables():  # type: ignore[no-untyped-def]
    """The sealed columns as of this revision (a migration keeps its own list, not the models')."""
    from models.keys import SealedTable

    return [
        SealedTable("admission", ("id",), ("full_name", "ethnicity"), name_key=True),
        SealedTable("candidate", ("id",), ("full_name", "ethnicity", "mentor_name"), name_key=True),
        SealedTable("person", ("id",), ("display_name",)),
        SealedTable("invite", ("id",), ("note",)),
        SealedTable("stored_state", ("kind", "key"), ("data",)),
        SealedTable("audit_entry", ("id",), ("old_value", "new_value", "reason")),
    ]


def _keys():  # type: ignore[no-untyped-def]
    from models.crypto import KeyProblem, keys_of

    try:
        return keys_of(op.get_bind().dialect)
    except KeyProblem:
        raise RuntimeError(
            "Migration 0012 cần khóa mã hóa: chạy python -m bot --config CONFIG init "
            "(đọc [security] key_file hoặc biến ADMISSIONS_BOT_KEY). / "
            "Migration 0012 needs the encryption key: run python -m bot --config CONFIG init "
            "(it reads [security] key_file or ADMISSIONS_BOT_KEY)."
        ) from None


class _InClear:
    """Writes values back in clear for the downgrade (the schema before 0012 stored plain text)."""

    @staticmethod
    def encrypt(plain: str) -> str:
        return plain

    @staticmethod
    def name_key(person: str) -> str:
        return person.split("\x1f", 1)[0]  # before 0012 the name key was the folded name alone

    @staticmethod
    def check_value() -> str:
        return ""


def upgrade() -> None:
    from models.keys import reseal
    from models.values import name_key

    keys = _keys()
    op.create_table(
        'key_check',
        sa.Column('id', ID, autoincrement=False, nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_key_check')),
    )
    op.create_table(
        'start_attempt',
        sa.Column('id', ID, nullable=False),
        sa.Column('telegram_id', ID, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_start_attempt')),
    )
    op.create_index('ix_start_attempt_user_at', 'start_attempt', ['telegram_id', 'at'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in PERSONAL_VARCHARS:
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))
    reseal(op.get_bind(), _tables(), lambda stored: stored, keys, name_key)


def downgrade() -> None:
    from models.crypto import KeyProblem
    from models.keys import reseal, stored_check
    from models.values import name_key

    keys = _keys()
    check = stored_check(op.get_bind())
    if check is None or not keys.opens(check):
        raise KeyProblem("wrong")
    reseal(op.get_bind(), _tables(), keys.decrypt, _InClear(), name_key)  # type: ignore[arg-type]
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in PERSONAL_VARCHARS:
            op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
    op.drop_index('ix_start_attempt_user_at', table_name='start_attempt')
    op.drop_table('start_attempt')
    op.drop_table('key_check')
