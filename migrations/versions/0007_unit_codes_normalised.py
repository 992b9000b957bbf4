"""unit codes in their normal form: NFKC, upper-case (codes are case-insensitive from now on)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00

Every code typed anywhere goes through models.units.normal_code; this brings codes stored before
that rule into the same form. Two stored codes that would become one (say "pn" and "PN", or the
full-width "ＰＮ" and "PN") stop the upgrade with a message naming them, and nothing is changed:
rename one of them (import-units with the new code, or by hand) and upgrade again.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _normal_code(text: str) -> str:
    # A copy of models.units.normal_code as it was when this migration was written (a migration
    # must keep doing what it did even if the application's rule changes later).
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).strip().upper())


class CodeCollision(RuntimeError):
    """Two or more stored unit codes have the same normal form."""


def upgrade() -> None:
    conn = op.get_bind()
    unit = sa.table('unit', sa.column('id', sa.Integer), sa.column('code', sa.String))
    rows = conn.execute(sa.select(unit.c.id, unit.c.code).order_by(unit.c.id)).all()
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for unit_id, code in rows:
        groups[_normal_code(code)].append((unit_id, code))
    collisions = {normal: found for normal, found in groups.items() if len(found) > 1}
    if collisions:
        lines = [f"  {normal!r}: " + ", ".join(f"{code!r} (unit id {unit_id})" for unit_id, code in found)
                 for normal, found in sorted(collisions.items())]
        raise CodeCollision(
            "Unit codes are now case-insensitive (NFKC, upper-case), and these stored codes would become "
            "the same code:\n" + "\n".join(lines) + "\nRename all but one of each group, then upgrade again. "
            "Nothing was changed."
        )
    # No collision: no changed code can meet another unit's current code, so plain updates suffice.
    for normal, [(unit_id, code)] in groups.items():
        if normal != code:
            conn.execute(sa.update(unit).where(unit.c.id == unit_id).values(code=normal))


def downgrade() -> None:
    # The original spelling of each code is not kept: codes stay in their normal form.
    pass
