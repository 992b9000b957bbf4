"""Two small portable SQL constructs the progress queries need for speed.

- `unindexed(column)`: the column, but SQLite may not use an index for a condition on it
  (`+column`, SQLite's documented way to steer its planner). It makes the path-range index the
  only usable one for narrow scopes, whatever statistics (or none) the database has.
- `position(text, part)`: 1-based position of `part` in `text`, 0 if absent (instr / strpos).
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


class position(FunctionElement[int]):  # noqa: N801 - reads like a SQL function
    """1-based position of the second argument in the first (0 when absent)."""

    inherit_cache = True
    name = "position"
    type = Integer()


@compiles(position)
def _position_default(element: position, compiler: Any, **kw: Any) -> str:
    return "strpos(%s)" % compiler.process(element.clauses, **kw)


@compiles(position, "sqlite")
def _position_sqlite(element: position, compiler: Any, **kw: Any) -> str:
    return "instr(%s)" % compiler.process(element.clauses, **kw)
