"""The data revision: a counter of committed changes to domain data, so caches know when to forget.

Every session made by models.db.session_factory watches what it writes. When a transaction that
wrote to a domain table (anything whose table is not marked `info={"bookkeeping": True}`: processed
updates, conversation state, the reminders' sent-log) commits, the row in `data_revision` is
incremented inside that same transaction, and the factory's `on_change` callback runs after the
commit. A cache in this process is told at once; a cache in another process (the bot, while the
command line imports targets) notices the new revision the next time it reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction, sessionmaker

from models.entities import DATA_REVISION_ROW, DataRevision

CHANGED = "domain_data_changed"  # keys in Session.info
WROTE = "wrote"
ROW_ID = DATA_REVISION_ROW


def is_domain(table: object) -> bool:
    """Tell whether writing to `table` changes what people see (bookkeeping tables do not)."""
    return isinstance(table, Table) and not table.info.get("bookkeeping", False)


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    session.info[WROTE] = True
    for obj in (*session.new, *session.dirty, *session.deleted):
        if is_domain(getattr(type(obj), "__table__", None)):
            session.info[CHANGED] = True
            return


def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[WROTE] = True
        if is_domain(getattr(state.statement, "table", None)):
            state.session.info[CHANGED] = True


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: the transaction around it commits (or not) later
    session.flush()  # what is still pending is written now, so that it counts
    if session.info.get(CHANGED):
        session.execute(update(DataRevision).where(DataRevision.id == ROW_ID).values(value=DataRevision.value + 1))


def _forget_change(session: Session, transaction: SessionTransaction) -> None:
    # Only when the outermost transaction ends: a savepoint rolled back keeps what was written
    # before it (and what it wrote counts too, which at worst makes a cache forget once more).
    if transaction.parent is None:
        session.info.pop(CHANGED, None)
        session.info.pop(WROTE, None)


def watch_changes(maker: sessionmaker[Session], on_change: Callable[[], None] | None = None,
                  on_write: Callable[[], None] | None = None) -> None:
    """Make every session of `maker` bump the revision when it commits domain writes, then call `on_change`.

    `on_write` is called after every commit that wrote anything at all, bookkeeping included."""
    event.listen(maker, "after_flush", _after_flush)
    event.listen(maker, "do_orm_execute", _on_execute)
    event.listen(maker, "before_commit", _before_commit)

    def after_commit(session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint released inside a transaction that is still open
        if session.info.pop(CHANGED, None) and on_change is not None:
            on_change()
        if session.info.pop(WROTE, None) and on_write is not None:
            on_write()

    event.listen(maker, "after_commit", after_commit)
    event.listen(maker, "after_transaction_end", _forget_change)


async def current_revision(session: AsyncSession) -> int:
    """Return the data revision (0 when the row is missing, e.g. a database made before it existed)."""
    return int(await session.scalar(select(DataRevision.value).where(DataRevision.id == ROW_ID)) or 0)


def note_domain_write(session: Session) -> None:
    """Record that `session` wrote domain data past the ORM (a driver-level executemany): its commit
    then bumps the revision as an ORM write would."""
    session.info[WROTE] = True
    session.info[CHANGED] = True
