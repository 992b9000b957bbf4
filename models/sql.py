"""Two small portable SQL constructs the progress queries need for speed.

- `unindexed(column)`: the column, but SQLite may not use an index for a condition on it
  (`+column`, SQLite's documented way to steer its planner). It makes the path-range index the
  only usable one for narrow scopes, whatever statistics (or none) the database has.
- `leading_id(text)`: the integer `text` starts with, 0 when none ("23/456/" → 23, "" → 0): the
  next segment of a materialised path, as a number that groups faster than a string.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class unindexed(FunctionElement[Any]):  # noqa: N801 - reads like a SQL function
    """The wrapped column, not usable by SQLite's planner for index lookups."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element: unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


class leading_id(FunctionElement[int]):  # noqa: N801 - reads like a SQL function
    """The integer at the start of the argument ("23/456/" gives 23), 0 when it starts with none."""

    inherit_cache = True
    name = "leading_id"
    type = Integer()


@compiles(leading_id)
def _leading_id_default(element: leading_id, compiler: Any, **kw: Any) -> str:
    # split_part, not a regular expression: half the time over a year of national admissions.
    # Committed paths hold only unit ids ("/1/23/"); models.units.load_units replaces its
    # temporary "/new-CODE/" paths before its transaction ends, so the cast cannot fail on them.
    return "coalesce(cast(nullif(split_part(%s, '/', 1), '') AS bigint), 0)" % compiler.process(element.clauses, **kw)


@compiles(leading_id, "sqlite")
def _leading_id_sqlite(element: leading_id, compiler: Any, **kw: Any) -> str:
    # CAST reads the leading digits of a text and gives 0 for none (SQLite's documented rule).
    return "cast(%s AS integer)" % compiler.process(element.clauses, **kw)
