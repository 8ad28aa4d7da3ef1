"""A policy as a SQL condition, so a list endpoint loads only what the caller may see.

`visible_rows(identity, policy, items)` turns the policy that guards one object
(``HasRole("admin") | IsOwner()``) into a SQLAlchemy condition on the table (or mapped
class) the objects come from: the same decision `authgate.permissions.filter_objects`
makes in Python, made by the database::

    from authgate.permissions.sql import Sharing, visible_rows

    query = select(items).where(
        visible_rows(identity, ITEM_ACCESS, items, sharing=Sharing(item_groups, "item_id"))
    )

The parts that depend only on the identity (roles, permissions) become constants,
so an admin's condition is a constant true; `IsOwner` becomes ``owner = :name``,
or'ed with ``id IN (SELECT ...)`` on the sharing table when the object may be shared
with groups.  A policy of your own that decides per object translates itself with a
``where(identity, rows)`` method (`Rows` says which table); any other is refused
(`TypeError`) rather than guessed.  Needs SQLAlchemy (``authgate[sql]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from ..identity import Identity
from .policies import IsOwner, Policy, _And, _Not, _Or

__all__ = ["Rows", "Sharing", "visible_rows"]


@dataclass(frozen=True)
class Sharing:
    """A table that shares objects with groups: one row per (object, group).

    `key` names its column holding the object's primary key, `group` the column
    holding the group's name.
    """

    table: sa.Table
    key: str
    group: str = "group_name"


@dataclass(frozen=True)
class Rows:
    """Where the objects live: a `sa.Table` (or a mapped class) and its sharing table."""

    source: Any
    sharing: Sharing | None = None

    def column(self, name: str) -> ColumnElement[Any]:
        """The column `name` of the objects' table (or the mapped class's attribute)."""
        if isinstance(self.source, sa.FromClause):
            try:
                column: ColumnElement[Any] = self.source.c[name]
            except KeyError:
                raise TypeError(f"{self.source} has no column {name!r}") from None
            return column
        attribute = getattr(self.source, name, None)
        if attribute is None:
            raise TypeError(f"{self.source!r} has no column {name!r}")
        return attribute  # type: ignore[no-any-return]

    def primary_key(self) -> ColumnElement[Any]:
        """The objects' primary key (a single column)."""
        if isinstance(self.source, sa.FromClause):
            keys: list[Any] = list(self.source.primary_key)
        else:
            keys = list(sa.inspect(self.source).primary_key)
        if len(keys) != 1:
            raise TypeError(f"sharing needs a single-column primary key on {self.source}")
        first: ColumnElement[Any] = keys[0]
        return first


def visible_rows(
    identity: Identity, policy: Policy, source: Any, *, sharing: Sharing | None = None
) -> ColumnElement[bool]:
    """The condition under which `policy` lets `identity` see a row of `source`: the
    objects `filter_objects(identity, action, rows, policy=policy)` would keep."""
    return _where(policy, identity, Rows(source, sharing))


def _where(policy: Policy, identity: Identity, rows: Rows) -> ColumnElement[bool]:
    # What each form stands for: policy.allows(identity) and policy.allows_object(...).
    if isinstance(policy, _And):
        return sa.and_(_where(policy.left, identity, rows), _where(policy.right, identity, rows))
    if isinstance(policy, _Or):
        return sa.or_(_where(policy.left, identity, rows), _where(policy.right, identity, rows))
    if isinstance(policy, _Not):  # ~p allows an object exactly when p refuses the class
        return _constant(not policy.inner.allows(identity))
    if not policy.allows(identity):
        return sa.false()
    own = getattr(policy, "where", None)
    if own is not None:  # first: a subclass of IsOwner may add conditions of its own
        return own(identity, rows)  # type: ignore[no-any-return]
    if isinstance(policy, IsOwner) and type(policy).allows_object is IsOwner.allows_object:
        return _owned_or_shared(policy, identity, rows)
    if type(policy).allows_object is Policy.allows_object:  # decides on the identity alone
        return sa.true()
    raise TypeError(
        f"{type(policy).__name__} decides per object in Python only: give it a "
        "where(identity, rows) method returning a SQLAlchemy condition, or filter the "
        "loaded objects with filter_objects"
    )


class _SameText(ColumnElement[bool]):
    """``column IN (values)`` compared byte for byte, as Python compares names: MySQL's
    and MariaDB's default collations ignore case and accents (``jose`` would match a
    row owned by ``José``), so there the test is also made on the bytes (the plain one
    stays, for the index)."""

    type = sa.Boolean()
    inherit_cache = False  # compiled per dialect below

    def __init__(self, column: ColumnElement[Any], values: list[str]) -> None:
        self.column, self.values = column, values


@compiles(_SameText)
def _same_text(element: _SameText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(element.values), **kw)


@compiles(_SameText, "mysql")
@compiles(_SameText, "mariadb")
def _same_bytes(element: _SameText, compiler: SQLCompiler, **kw: Any) -> str:
    as_bytes = sa.cast(element.column, sa.LargeBinary)
    exact = as_bytes.in_([sa.cast(sa.literal(v), sa.LargeBinary) for v in element.values])
    return compiler.process(sa.and_(element.column.in_(element.values), exact), **kw)


def _constant(value: bool) -> ColumnElement[bool]:
    return sa.true() if value else sa.false()


def _owned_or_shared(policy: IsOwner, identity: Identity, rows: Rows) -> ColumnElement[bool]:
    owned = _SameText(rows.column(policy.owner_attr), [identity.username or ""])
    if policy.groups_attr is None:
        return owned
    share = rows.sharing
    if share is None:
        # A column of one group name per row; a list of groups needs a sharing table.
        try:
            group = rows.column(policy.groups_attr)
        except TypeError:
            raise TypeError(
                f"IsOwner shares objects with the groups in {policy.groups_attr!r}: pass "
                "sharing=Sharing(table, key) naming the table that holds them, or use "
                "IsOwner(groups_attr=None) for objects never shared"
            ) from None
        if not identity.groups:
            return owned
        return sa.or_(owned, _SameText(group, sorted(identity.groups)))
    if not identity.groups:
        return owned
    # ``id IN (SELECT ...)``, not a correlated EXISTS: the same rows, and a database can
    # answer each side of the OR from its index (SQLite scanned the table for EXISTS).
    shared = rows.primary_key().in_(
        sa.select(share.table.c[share.key]).where(
            _SameText(share.table.c[share.group], sorted(identity.groups))
        )
    )
    return sa.or_(owned, shared)
