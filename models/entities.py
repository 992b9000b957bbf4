"""SQLAlchemy models of the domain (see ../shared/DOMAIN.md for the words)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Encrypted, NameKey, PathString

if TYPE_CHECKING:
    from models.periods import Period


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class UnitKind(enum.StrEnum):
    """Level of a party organisation in the tree."""

    PROVINCE = "province"
    DISTRICT = "district"
    COMMITTEE = "committee"
    CELL = "cell"


class Role(enum.StrEnum):
    """What a person does for a unit."""

    SECRETARY = "secretary"
    COMMITTEE = "committee"
    ADMIN = "admin"


class Sex(enum.StrEnum):
    """Sex of an admitted member, as the reports break it down."""

    MALE = "male"
    FEMALE = "female"


class AdmissionSource(enum.StrEnum):
    """How an admission reached the database."""

    CHAT = "chat"
    IMPORT = "import"


class Unit(Base):
    """A party organisation: province, district, grassroots committee or cell."""

    __tablename__ = "unit"
    # Counting the cells of a subtree is a range of this index (reporting rates, digests).
    __table_args__ = (Index("ix_unit_kind_path", "kind", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[UnitKind] = mapped_column(_enum(UnitKind))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    # Materialised path of ids, "/1/5/27/": a subtree is the range [path, path[:-1] + "0").
    path: Mapped[str] = mapped_column(PathString, unique=True)
    # Cells in this unit's subtree (1 for a cell), kept by models.units.load_units: the weekly
    # reporting rate's denominator without counting 270,000 cells for the whole country.
    cell_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Membership loaded from a file (import-units, import-members) as of a day; what changed after
    # that day is counted from admissions by models.membership. None: never loaded.
    members_full: Mapped[int | None]
    members_probationary: Mapped[int | None]
    members_as_of: Mapped[date | None] = mapped_column(Date)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Unit]] = relationship(back_populates="parent", order_by="Unit.name")
    villages: Mapped[list[Village]] = relationship(
        back_populates="unit", order_by="Village.position", cascade="all, delete-orphan"
    )

    @property
    def is_combined(self) -> bool:
        """A combined cell (chi bộ sinh hoạt ghép) covers several villages."""
        return len(self.villages) > 1

    @property
    def depth(self) -> int:
        """Return the number of ancestors."""
        return self.path.count("/") - 2


class Village(Base):
    """A village (thôn, bản) covered by a cell."""

    __tablename__ = "village"
    __table_args__ = (UniqueConstraint("unit_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)

    unit: Mapped[Unit] = relationship(back_populates="villages")


class Person(Base):
    """Someone who uses the bot: a secretary, a committee member or an admin.

    Only the Telegram id, the name Telegram shows and the chosen language are kept.
    """

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(unique=True)
    display_name: Mapped[str] = mapped_column(Encrypted(128), default="")
    language: Mapped[str] = mapped_column(String(8), default="vi")
    registered_at: Mapped[datetime]
    # False once the person blocked the bot (Telegram answered 403); set back on their next message.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    blocked_at: Mapped[datetime | None]
    away_until: Mapped[date | None] = mapped_column(Date)

    # The roles held now (what Scope reads); ended ones only in all_assignments.
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="Assignment.id",
        primaryjoin="and_(Person.id == Assignment.person_id, Assignment.ended_at.is_(None))",
    )
    all_assignments: Mapped[list[Assignment]] = relationship(
        viewonly=True, order_by="Assignment.id", primaryjoin="Person.id == Assignment.person_id"
    )


class Assignment(Base):
    """A role a person holds for a unit (its subtree is their scope)."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("person_id", "unit_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    # When the role ended (revoked by an admin, or handed over to a successor); None while held.
    # An ended assignment gives no access; it stays so that /people can say "revoked" and the audit
    # trail can name who held the role. Only rows with ended_at IS NULL make up a person's scope.
    ended_at: Mapped[datetime | None]
    # When the person took on this role (the invite's redemption; migration 0008 filled older rows
    # from the person's registered_at). None only for rows written around the models: read as the
    # person's registered_at (models.reminders.secretary_since). A cell's silence is measured from it.
    started_at: Mapped[datetime | None]

    person: Mapped[Person] = relationship(back_populates="assignments")
    unit: Mapped[Unit] = relationship()

    @property
    def is_active(self) -> bool:
        """Tell whether the role is still held."""
        return self.ended_at is None


class Invite(Base):
    """A single-use registration code; only its SHA-256 is stored."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    role: Mapped[Role] = mapped_column(_enum(Role))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # Who made it in the chat (None: the command line), and for a hand-over the assignment that
    # ends when this invite is used.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id"))
    note: Mapped[str | None] = mapped_column(Encrypted(200))  # may name the person it is for: sealed

    unit: Mapped[Unit] = relationship()


class Target(Base):
    """An annual plan (start_year == end_year, 1 January to 31 December) or a term target.

    The years name the period ("2025-2030"); the days measure it: a term runs from the congress
    (1/7/2025–30/6/2030 by default, models.progress.Period), or the exact dates it was set with.
    """

    __tablename__ = "target"
    __table_args__ = (
        UniqueConstraint("unit_id", "start_year", "end_year"),
        CheckConstraint("end_year >= start_year", name="period_order"),
        CheckConstraint("value >= 0", name="value_not_negative"),
        CheckConstraint("ends_on >= starts_on", name="days_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    start_year: Mapped[int]
    end_year: Mapped[int]
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    value: Mapped[int]

    unit: Mapped[Unit] = relationship()

    @classmethod
    def of(cls, unit_id: int, period: Period, value: int) -> Target:
        """Return the target `value` of the unit for `period` (its years and its days)."""
        return cls(unit_id=unit_id, start_year=period.start_year, end_year=period.end_year,
                   starts_on=period.first_day, ends_on=period.last_day, value=value)


class Admission(Base):
    """A new member admitted by decision (kết nạp): the count targets measure.

    Only what DOMAIN.md allows is kept: name, birth year, sex, ethnicity, unit, decision number
    and date, Youth Union membership. Withdrawn reports stay for the audit trail but do not count.
    """

    __tablename__ = "admission"
    __table_args__ = (
        Index("ix_admission_path_date", "unit_path", "admitted_on"),
        # Counted admissions only, covering every column /progress sums: subtree counts and breakdowns
        # are index-only range scans (bench/progress.py; docs/benchmarks/progress.md).
        Index("ix_admission_counted", "unit_path", "admitted_on", "sex", "minority", "youth_union", "birth_year",
              sqlite_where=text("withdrawn_at IS NULL"), postgresql_where=text("withdrawn_at IS NULL")),
        # The same, date first: the whole tree reads one period of rows instead of every period.
        Index("ix_admission_counted_by_date", "admitted_on", "unit_path", "sex", "minority", "youth_union",
              "birth_year", sqlite_where=text("withdrawn_at IS NULL"), postgresql_where=text("withdrawn_at IS NULL")),
        # Chat reports of one week, by cell (weekly reporting rates, reminders): index-only.
        Index("ix_admission_chat_reports", "reported_at", "unit_path", "unit_id",
              sqlite_where=text("source = 'chat' AND withdrawn_at IS NULL"),
              postgresql_where=text("source = 'chat' AND withdrawn_at IS NULL")),
        Index("ix_admission_name_key", "name_key", "birth_year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    # Copy of the unit's path so that subtree counts are one indexed range scan.
    unit_path: Mapped[str] = mapped_column(PathString)
    full_name: Mapped[str] = mapped_column(Encrypted(120))
    # HMAC-SHA-256 of the folded name and birth year (models.base.NameKey): "same person" without the name.
    name_key: Mapped[str] = mapped_column(NameKey())
    birth_year: Mapped[int]
    sex: Mapped[Sex] = mapped_column(_enum(Sex))
    ethnicity: Mapped[str | None] = mapped_column(Encrypted(60))
    minority: Mapped[bool] = mapped_column(Boolean, default=False)
    youth_union: Mapped[bool | None] = mapped_column(Boolean)
    decision_no: Mapped[str | None] = mapped_column(String(60))
    admitted_on: Mapped[date] = mapped_column(Date)
    source: Mapped[AdmissionSource] = mapped_column(_enum(AdmissionSource))
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    reported_at: Mapped[datetime]
    # Idempotency key of a chat report: a repeated confirmation cannot save twice.
    report_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    # After the decision (models.membership, models.deadlines): the ceremony (lễ kết nạp), the
    # recognition as a full member (công nhận chính thức) or the removal (xóa tên).
    ceremony_on: Mapped[date | None] = mapped_column(Date)
    recognized_on: Mapped[date | None] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)

    unit: Mapped[Unit] = relationship()


class AuditChannel(enum.StrEnum):
    """Where a change came from."""

    CHAT = "chat"
    CLI = "cli"
    FILE = "file"


class AuditEntry(Base):
    """One change to the data, kept for ever: who, when, what (field, old → new), why, and how.

    Entries are only ever inserted (models.audit); the database refuses to update or delete them
    (triggers made by migration 0010 and by create_all). `unit_path` is the path of the unit the
    change concerns, so an admin's or committee member's subtree reads its entries as one range.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_path_at", "unit_path", "at"),
                      Index("ix_audit_entry_subject", "subject", "subject_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # None: the command line
    channel: Mapped[AuditChannel] = mapped_column(_enum(AuditChannel))
    action: Mapped[str] = mapped_column(String(32))  # models.audit.Action
    subject: Mapped[str] = mapped_column(String(32))  # "admission", "invite", "assignment", "target", "unit", …
    subject_id: Mapped[int | None]
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    unit_path: Mapped[str | None] = mapped_column(PathString)
    field: Mapped[str | None] = mapped_column(String(32))
    # Encrypted: old and new values and reasons hold names (models.keys.rotate re-encrypts them).
    old_value: Mapped[str | None] = mapped_column(Encrypted())
    new_value: Mapped[str | None] = mapped_column(Encrypted())
    reason: Mapped[str | None] = mapped_column(Encrypted())


# The database itself refuses to change the audit trail (create_all here; migration 0010 likewise).
AUDIT_IMMUTABLE_SQLITE = (
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are never updated'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are never deleted'); END",
)
AUDIT_IMMUTABLE_POSTGRESQL = (
    "CREATE OR REPLACE FUNCTION audit_entry_immutable() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit entries are never updated or deleted'; END $$",
    "CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_immutable()",
)
for _statement in AUDIT_IMMUTABLE_SQLITE:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in AUDIT_IMMUTABLE_POSTGRESQL:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


class UnitLock(Base):
    """Books closed for a unit's subtree up to a day (khóa sổ): see models.locks."""

    __tablename__ = "unit_lock"

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), primary_key=True, autoincrement=False)
    closed_until: Mapped[date] = mapped_column(Date)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    set_at: Mapped[datetime]

    unit: Mapped[Unit] = relationship()


class ProcessedUpdate(Base):
    """A Telegram update already handled, so a repeated delivery is skipped."""

    __tablename__ = "processed_update"
    __table_args__ = {"info": {"bookkeeping": True}}  # not domain data: see models.revision

    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime]


class StoredState(Base):
    """PTB persistence (conversation states, user data) kept in the project's database as JSON."""

    __tablename__ = "stored_state"
    __table_args__ = {"info": {"bookkeeping": True}}

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Encrypted())  # drafts hold names: sealed like them


class DataRevision(Base):
    """One row counting the commits that changed domain data (see models.revision)."""

    __tablename__ = "data_revision"
    __table_args__ = {"info": {"bookkeeping": True}}

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


DATA_REVISION_ROW = 1
# The single row exists from the start: migration 0005 inserts it, and so does create_all.
event.listen(DataRevision.__table__, "after_create",
             DDL(f"INSERT INTO data_revision (id, value) VALUES ({DATA_REVISION_ROW}, 0)"))


class KeyCheck(Base):
    """One row: a known token sealed with the database's key, so a start with another key (or none)
    stops with a clear message instead of failing on the first name (models.keys.check_key)."""

    __tablename__ = "key_check"
    __table_args__ = {"info": {"bookkeeping": True}}

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[str] = mapped_column(Text)


KEY_CHECK_ROW = 1


@event.listens_for(KeyCheck.__table__, "after_create")
def _first_key_check(target, connection, **_kw) -> None:  # type: ignore[no-untyped-def]
    """create_all seals the check value with the engine's key when it has one (migration 0012 likewise)."""
    from models.crypto import KeyProblem, keys_of

    try:
        keys = keys_of(connection.dialect)
    except KeyProblem:
        return  # no key yet: the first start says so
    connection.execute(target.insert().values(id=KEY_CHECK_ROW, value=keys.check_value()))


class StartAttempt(Base):
    """A failed `/start CODE` by a Telegram user, kept one hour (handlers.registration limits them)."""

    __tablename__ = "start_attempt"
    __table_args__ = (Index("ix_start_attempt_user_at", "telegram_id", "at"), {"info": {"bookkeeping": True}})

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int]
    at: Mapped[datetime]
# The candidate pipeline (before the decision) ---------------------------------------------------


class Stage(enum.StrEnum):
    """A stage of the admission process a candidate has reached, in order (the keys are the contract).

    The decision that follows `dang_uy` is not a stage: it is an Admission (models.candidates.link).
    """

    NGUON = "nguon"  # tạo nguồn: a source
    CAM_TINH = "cam_tinh"  # danh sách cảm tình Đảng, with a mentor
    LOP = "lop"  # lớp bồi dưỡng nhận thức về Đảng done (certificate date)
    HO_SO = "ho_so"  # đơn, lý lịch, giới thiệu submitted
    THAM_TRA = "tham_tra"  # background checked
    CHI_BO = "chi_bo"  # nghị quyết chi bộ
    DANG_UY = "dang_uy"  # nghị quyết đảng ủy cơ sở


STAGES = tuple(Stage)


class ExitReason(enum.StrEnum):
    """Why a candidate left the pipeline (the keys are the contract)."""

    WORKING_AWAY = "di_lam_an_xa"  # đi làm ăn xa: may come back (models.candidates.come_back)
    WITHDREW = "xin_rut"  # withdrew
    NOT_ELIGIBLE = "khong_du_dk"  # not eligible (không đủ điều kiện)


class Candidate(Base):
    """A person in a cell's pipeline (quần chúng), kept like an Admission and as sensitive.

    Only what DOMAIN.md allows: name, birth year, sex, ethnicity, Youth Union, mentor's name, stage
    dates, exit reason. One who left is forgotten `[pipeline] forget_after_days` after leaving.
    """

    __tablename__ = "candidate"
    __table_args__ = (Index("ix_candidate_path_stage", "unit_path", "stage"),
                      Index("ix_candidate_name_key", "name_key", "birth_year"))

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    unit_path: Mapped[str] = mapped_column(PathString)
    # Sealed like an Admission's (models.base.Encrypted); name_key the HMAC of person_key (NameKey).
    full_name: Mapped[str] = mapped_column(Encrypted(120))
    name_key: Mapped[str] = mapped_column(NameKey())
    birth_year: Mapped[int]
    sex: Mapped[Sex] = mapped_column(_enum(Sex))
    ethnicity: Mapped[str | None] = mapped_column(Encrypted(60))
    minority: Mapped[bool] = mapped_column(Boolean, default=False)
    youth_union: Mapped[bool | None] = mapped_column(Boolean)
    mentor_name: Mapped[str | None] = mapped_column(Encrypted(120))
    stage: Mapped[Stage] = mapped_column(_enum(Stage))
    exit_reason: Mapped[ExitReason | None] = mapped_column(_enum(ExitReason))
    exited_on: Mapped[date | None] = mapped_column(Date)
    # The admission that ended the pipeline (the decision); None while the candidate is in it.
    admission_id: Mapped[int | None] = mapped_column(ForeignKey("admission.id", ondelete="SET NULL"), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Idempotency key of a chat addition (the form's ref): a repeated ✅ after a crash adds no twin.
    added_ref: Mapped[str | None] = mapped_column(String(64), unique=True)

    unit: Mapped[Unit] = relationship()
    history: Mapped[list[CandidateStage]] = relationship(
        back_populates="candidate", cascade="all, delete-orphan", passive_deletes=True,
        order_by="(CandidateStage.reached_on, CandidateStage.id)")


class CandidateStage(Base):
    """One stage a candidate reached, with its day (the card's history)."""

    __tablename__ = "candidate_stage"

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidate.id", ondelete="CASCADE"), index=True)
    stage: Mapped[Stage] = mapped_column(_enum(Stage))
    reached_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime]
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))

    candidate: Mapped[Candidate] = relationship(back_populates="history")


class DeadlineNotice(Base):
    """A deadline reminder already delivered: one per admission and deadline (models.deadlines)."""

    __tablename__ = "deadline_notice"
    __table_args__ = (UniqueConstraint("admission_id", "deadline"), {"info": {"bookkeeping": True}})

    id: Mapped[int] = mapped_column(primary_key=True)
    admission_id: Mapped[int] = mapped_column(ForeignKey("admission.id", ondelete="CASCADE"))
    deadline: Mapped[str] = mapped_column(String(32))  # models.deadlines.Deadline
    sent_at: Mapped[datetime]
