"""The database's key: checking it at start, re-sealing everything under a new one (rotate-key, migration 0012).

- The `key_check` row holds a known token sealed with the key the data was written under. A start
  whose key does not open it (or that has no key) stops with KeyProblem before any name is read:
  never garbage, never a silently empty list.
- `reseal` opens every sealed value with the old key and seals it with the new one, recomputes the
  name keys (HMACs) and the check row, all in the caller's transaction: it commits whole or not at
  all. The audit trail is insert-only by triggers (migration 0010); re-sealing is the one
  sanctioned update of its rows, so the triggers are dropped and made again inside the same
  transaction (`audit_triggers_lifted`): no other writer can see the table without them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import Base, Encrypted, NameKey
from models.crypto import Keys, KeyProblem, keys_of
from models.entities import (
    AUDIT_IMMUTABLE_POSTGRESQL,
    AUDIT_IMMUTABLE_SQLITE,
    KEY_CHECK_ROW,
    KeyCheck,
)


@dataclass(frozen=True)
class SealedTable:
    """Where sealed values live in one table: its key columns, sealed columns, and whether it has a
    name key (HMAC of `full_name` and `birth_year`, as models.admissions.person_key)."""

    name: str
    key: tuple[str, ...]
    sealed: tuple[str, ...]
    name_key: bool = False


def sealed_tables() -> list[SealedTable]:
    """Return the tables of the models that hold Encrypted or NameKey columns (a new table is found by its types)."""
    found = []
    for table in Base.metadata.sorted_tables:
        sealed = tuple(c.name for c in table.c if isinstance(c.type, Encrypted))
        hashed = any(isinstance(c.type, NameKey) for c in table.c)
        if sealed or hashed:
            found.append(SealedTable(table.name, tuple(c.name for c in table.primary_key.columns), sealed, hashed))
    return found


async def check_key(session: AsyncSession) -> None:
    """Raise KeyProblem unless the engine's key opens the database's key check value."""
    keys = keys_of(session.get_bind().dialect)
    stored = await session.scalar(select(KeyCheck.value).where(KeyCheck.id == KEY_CHECK_ROW))
    if stored is None:
        raise KeyProblem("unchecked")
    if not keys.opens(stored):
        raise KeyProblem("wrong")


def stored_check(connection: Connection) -> str | None:
    """Return the stored key check value (None when there is none)."""
    return connection.execute(text("SELECT value FROM key_check WHERE id = :id"), {"id": KEY_CHECK_ROW}).scalar()


@contextlib.contextmanager
def audit_triggers_lifted(connection: Connection) -> Iterator[None]:
    """Drop the audit trail's insert-only triggers for the block and make them again (same transaction)."""
    if connection.dialect.name == "sqlite":
        connection.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_update"))
        connection.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_delete"))
        yield
        for statement in AUDIT_IMMUTABLE_SQLITE:
            connection.exec_driver_sql(statement)
        return
    connection.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_change ON audit_entry"))
    yield
    for statement in AUDIT_IMMUTABLE_POSTGRESQL:
        connection.exec_driver_sql(statement)


def reseal(connection: Connection, tables: Sequence[SealedTable], open_value: Callable[[str], str], new: Keys,
           fold: Callable[[str], str]) -> int:
    """Open every sealed value with `open_value` and seal it with `new`; recompute name keys
    (`fold` folds a name, models.values.name_key) and the key check row. Returns the rows rewritten.

    Runs in the caller's transaction; a value the old key cannot open raises KeyProblem("wrong")
    and the caller's rollback leaves everything as it was."""
    from models.admissions import folded_person_key

    rewritten = 0
    with audit_triggers_lifted(connection):
        for table in tables:
            names = list(table.sealed)
            if table.name_key:
                names += [c for c in ("full_name", "birth_year") if c not in names]
            columns = ", ".join([*table.key, *names])
            rows = connection.execute(text(f"SELECT {columns} FROM {table.name}")).mappings().all()
            sets = [*table.sealed, *(["name_key"] if table.name_key else [])]
            if not rows or not sets:
                continue
            where = " AND ".join(f"{k} = :k_{k}" for k in table.key)
            update = text(f"UPDATE {table.name} SET {', '.join(f'{c} = :v_{c}' for c in sets)} WHERE {where}")
            batch = []
            for row in rows:
                values = {f"k_{k}": row[k] for k in table.key}
                plain = {c: None if row[c] is None else open_value(row[c]) for c in table.sealed}
                for column in table.sealed:
                    values[f"v_{column}"] = None if plain[column] is None else new.encrypt(plain[column])
                if table.name_key:
                    name = plain.get("full_name", row.get("full_name"))
                    values["v_name_key"] = new.name_key(folded_person_key(fold(name), row["birth_year"]))
                batch.append(values)
            connection.execute(update, batch)
            rewritten += len(batch)
    connection.execute(text("DELETE FROM key_check"))
    connection.execute(text("INSERT INTO key_check (id, value) VALUES (:id, :value)"),
                       {"id": KEY_CHECK_ROW, "value": new.check_value()})
    return rewritten


def rotate(connection: Connection, old: Keys, new: Keys) -> int:
    """Re-seal the whole database from `old` to `new` in the caller's transaction; return the rows rewritten.

    Refuses (KeyProblem("wrong")) when `old` does not open the key check value."""
    from models.values import name_key

    stored = stored_check(connection)
    if stored is None or not old.opens(stored):
        raise KeyProblem("wrong")
    return reseal(connection, sealed_tables(), old.decrypt, new, name_key)

