"""Declarative base with the project's type map and naming convention."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine

from models.crypto import keys_of

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC (SQLite keeps no zone, so it is added back on load)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Encrypted(TypeDecorator[str]):
    """Text stored sealed with AES-GCM under the engine's key (models.crypto), read back in clear.

    The key comes from the dialect of the engine the value travels through (models.db attaches it
    when the engine is made), so the same column works for every engine and nothing is global. Use
    it for any personal text: `mapped_column(Encrypted(120))`. `length` is the longest plain text
    accepted; the stored form is longer, so PostgreSQL gets TEXT, while SQLite (which never enforces
    a declared length) keeps the VARCHAR(length) it had, so encrypting needs no table rebuild.
    Such a column can only be compared in Python: SQL equality would compare random ciphertexts
    (look people up by an HMAC key instead, models.crypto.Keys.name_key).
    """

    impl = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[str]:
        # Not dialect.type_descriptor(): psycopg's adaptation of Text would render VARCHAR.
        return String(self.length) if self.length is not None and dialect.name == "sqlite" else Text()

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keys_of(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keys_of(dialect).decrypt(value)


class NameKey(TypeDecorator[str]):
    """The "same person" key: given models.admissions.person_key(name, birth year), stores its
    HMAC-SHA-256 under the engine's hashing key (hex, 64 characters).

    The HMAC is taken where the value is bound, for an INSERT and for a WHERE alike, so
    `Admission.name_key == person_key(name, year)` finds the stored twins through the index, and no
    caller needs the key. A value read back is the stored HMAC; a new object keeps the plain
    person key in memory until it is loaded again (it never reaches the database).
    """

    impl = String(120)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keys_of(dialect).name_key(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value


# Materialised unit paths are compared byte-wise; PostgreSQL's default collation would ignore "/".
PathString = String(255).with_variant(String(255, collation="C"), "postgresql")


class Base(DeclarativeBase):
    """Base class of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        # SQLite only auto-increments INTEGER PRIMARY KEY; Telegram ids need 64 bits elsewhere.
        int: BigInteger().with_variant(Integer(), "sqlite"),
        datetime: UTCDateTime(),
    }
