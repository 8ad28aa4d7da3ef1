"""Lists filtered by object permission (`filter_objects`, `gate.filter`), the same
decision as a SQL condition (`visible_rows`), and 404 instead of 403 for what a caller
may not see."""

from __future__ import annotations

import asyncio
import secrets
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from authgate import AsyncGate, Gate, as_identity
from authgate.decorators import (
    check_object_permission,
    check_object_permission_async,
    require_object_permission,
)
from authgate.errors import NotAuthenticated, NotFound, PermissionDenied
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import (
    AllowAll,
    DenyAll,
    HasPermission,
    HasRole,
    IsAuthenticated,
    IsOwner,
    Policy,
    RolePolicy,
    afilter_objects,
    check_object,
    check_object_async,
    filter_objects,
)
from authgate.permissions.sql import Rows, Sharing, visible_rows

SECRET = secrets.token_urlsafe(48)
POLICY = RolePolicy({"viewer": ["items:read"], "admin": ["*:*"]})


def who(name: str, roles: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Identity:
    grants = POLICY.permissions_for(frozenset(roles), frozenset(groups), frozenset())
    return Identity(
        username=name,
        roles=frozenset(roles),
        groups=frozenset(groups),
        permissions=grants.grants,
        is_authenticated=True,
        grants=grants,
    )


@dataclass(frozen=True)
class Note:
    """No hooks: the permission ``note:<action>`` (or the one the filter names) decides."""

    id: int
    owner: str = "alice"
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Doc:
    """Hooks: the class refuses ``delete`` to everyone; the object admits its owner."""

    id: int
    owner: str
    calls: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def has_permission(cls, identity: Identity, action: str) -> bool:
        return action != "delete"

    def has_object_permission(self, identity: Identity, action: str) -> bool:
        self.calls.append(action)
        return identity.username == self.owner


@dataclass(frozen=True)
class AsyncDoc:
    """Hooks written with ``async def`` (a check that asks a database)."""

    id: int
    owner: str

    async def has_object_permission(self, identity: Identity, action: str) -> bool:
        await asyncio.sleep(0)
        return identity.username == self.owner


ALICE, BOB = who("alice"), who("bob", ("viewer",), ("team",))
ADMIN = who("root", ("admin",))


# -- filtering in Python ------------------------------------------------------------------


def test_filter_keeps_what_the_hooks_allow_in_order_and_hands_them_the_action() -> None:
    docs = [Doc(1, "alice"), Doc(2, "bob"), Doc(3, "alice"), Doc(4, "carol")]
    assert [d.id for d in filter_objects(ALICE, "docs:read", docs)] == [1, 3]
    assert docs[0].calls == ["read"]  # the hook gets the action, not "docs:read"
    assert filter_objects(ALICE, "delete", docs) == []  # the class hook refuses first
    assert docs[0].calls == ["read"]  # ... and the object hook is never asked


def test_filter_without_hooks_asks_the_named_permission_once_per_class() -> None:
    notes = [Note(n) for n in range(5)]
    assert filter_objects(BOB, "items:read", notes) == notes  # viewer holds items:read
    assert filter_objects(BOB, "items:write", notes) == []
    assert filter_objects(BOB, "read", notes) == []  # the class's resource: note:read
    assert filter_objects(ADMIN, "read", notes) == notes
    assert filter_objects(ANONYMOUS, "items:read", notes) == []
    mixed: list[Any] = [Note(1), Doc(2, "bob"), Note(3), Doc(4, "alice")]
    assert filter_objects(BOB, "items:read", mixed) == [Note(1), Doc(2, "bob"), Note(3)]


def test_filter_with_a_policy_judges_class_and_object_checks_together() -> None:
    notes = [Note(1, "alice"), Note(2, "bob"), Note(3, "carol", ("team",)), Note(4, "dave")]
    access = HasRole("admin") | IsOwner()
    assert [n.id for n in filter_objects(BOB, "read", notes, policy=access)] == [2, 3]
    assert filter_objects(ADMIN, "read", notes, policy=access) == notes
    assert filter_objects(ANONYMOUS, "read", notes, policy=access) == []
    owner_reader = HasPermission("items:read") & IsOwner(groups_attr=None)
    assert [n.id for n in filter_objects(BOB, "read", notes, policy=owner_reader)] == [2]
    assert filter_objects(ALICE, "read", notes, policy=owner_reader) == []  # no items:read


def test_a_group_named_by_a_string_is_one_group_not_its_letters() -> None:
    shared = {"owner": "carol", "shared_with": "team"}
    assert IsOwner().allows_object(who("x", groups=("team",)), shared)
    assert not IsOwner().allows_object(who("x", groups=("t", "e", "a", "m")), shared)


def test_a_sync_filter_refuses_async_hooks_without_leaking_a_coroutine() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would fail here
        with pytest.raises(TypeError, match="async driver"):
            filter_objects(ALICE, "read", [AsyncDoc(1, "alice")])
        with pytest.raises(TypeError, match="async driver"):
            check_object(ALICE, AsyncDoc(1, "alice"), "read")


def test_async_filter_awaits_hooks_and_reads_async_iterables() -> None:
    docs: list[Any] = [AsyncDoc(1, "alice"), AsyncDoc(2, "bob"), Doc(3, "alice")]

    async def stream() -> AsyncIterator[Any]:
        for doc in docs:
            await asyncio.sleep(0)
            yield doc

    async def main() -> None:
        kept = await afilter_objects(ALICE, "read", stream())
        assert [d.id for d in kept] == [1, 3]
        assert [d.id for d in await afilter_objects(ALICE, "read", docs)] == [1, 3]
        assert await check_object_async(ALICE, docs[0], "read")
        assert not await check_object_async(BOB, docs[0], "read")

    asyncio.run(main())


def test_gate_filter_sync_and_async() -> None:
    notes = [Note(1, "alice"), Note(2, "bob")]
    gate = Gate(store="memory://", secret_key=SECRET)
    assert gate.filter(BOB, "read", notes, policy=IsOwner()) == [Note(2, "bob")]
    agate = AsyncGate(store="memory://", secret_key=SECRET)
    assert asyncio.run(agate.filter(BOB, "read", notes, policy=IsOwner())) == [Note(2, "bob")]
    docs: list[Any] = [AsyncDoc(1, "alice"), Doc(2, "alice"), AsyncDoc(3, "bob")]
    kept = asyncio.run(agate.filter(ALICE, "docs:read", docs))  # async hooks awaited
    assert [d.id for d in kept] == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="async driver"):
            gate.filter(ALICE, "docs:read", docs)


LEAVES: list[Policy] = [
    HasRole("admin"),
    HasRole("viewer"),
    HasPermission("items:read"),
    IsAuthenticated(),
    IsOwner(),
    IsOwner(groups_attr=None),
    AllowAll(),
    DenyAll(),
]
policies = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.builds(lambda a, b: a & b, inner, inner),
        st.builds(lambda a, b: a | b, inner, inner),
        st.builds(lambda a: ~a, inner),
    ),
    max_leaves=6,
)
people = st.one_of(
    st.just(ANONYMOUS),
    st.builds(
        lambda name, roles, groups: who(name, tuple(roles), tuple(groups)),
        st.sampled_from(["alice", "bob"]),
        st.sets(st.sampled_from(["viewer", "admin"]), max_size=2),
        st.sets(st.sampled_from(["team", "lab"]), max_size=2),
    ),
)
notes = st.lists(
    st.builds(
        Note,
        st.integers(0, 99),
        st.sampled_from(["alice", "bob", "carol"]),
        st.tuples() | st.tuples(st.sampled_from(["team", "lab"])),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, identity=people, objects=notes)
def test_a_filtered_list_is_each_object_judged_by_the_guard_definition(
    policy: Policy, identity: Identity, objects: list[Note]
) -> None:
    """`filter_objects` decides the identity's part once per list; the answer must be
    the one the guards give object by object."""
    expected = [o for o in objects if policy.allows(identity) and policy.allows_object(identity, o)]
    assert filter_objects(identity, "read", objects, policy=policy) == expected


def test_hook_classes_are_judged_as_check_object_judges_each() -> None:
    class Locked:
        """A class hook that refuses everything but reading."""

        @classmethod
        def has_permission(cls, identity: Identity, action: str) -> bool:
            return action == "read"

    class Mine(Locked):
        def __init__(self, owner: str) -> None:
            self.owner = owner

        def has_object_permission(self, identity: Identity, action: str) -> bool:
            return identity.username == self.owner

    class Loose:
        """An instance hook, set per object."""

        def __init__(self, allow: bool) -> None:
            self.has_object_permission = lambda identity, action: allow

    objects: list[Any] = [
        Mine("alice"), Locked(), Mine("bob"), Note(1), Loose(True), Loose(False), Doc(2, "alice")
    ]  # fmt: skip
    hooked_note = Note(2)  # a frozen dataclass given a hook on this instance only
    object.__setattr__(hooked_note, "has_object_permission", lambda identity, action: False)
    objects.insert(0, Note(3))  # the first Note has no hook: the class's answer is cached
    objects.append(hooked_note)
    for identity in (ALICE, BOB, ADMIN, ANONYMOUS):
        for action in ("read", "write", "items:read", "note:read"):
            expected = [o for o in objects if check_object(identity, o, action)]
            for order in (objects, objects[::-1]):  # the order never changes a verdict
                kept = filter_objects(identity, action, order)
                assert kept == [o for o in order if o in expected], (identity, action)


def test_sql_refuses_or_obeys_an_owner_rule_with_a_condition_of_its_own() -> None:
    """A subclass of IsOwner that narrows it must not be read as plain ownership."""

    class PublishedOwner(IsOwner):
        def allows_object(self, identity: Identity, obj: object) -> bool:
            return super().allows_object(identity, obj) and bool(getattr(obj, "published", False))

    with pytest.raises(TypeError, match="where"):
        visible_rows(ALICE, PublishedOwner(groups_attr=None), ITEMS)

    class TeamOwner(IsOwner):
        def where(self, identity: Identity, rows: Rows) -> Any:
            return rows.column("team") == "red"

    assert str(visible_rows(ALICE, TeamOwner(), ITEMS)) == "items.team = :team_1"


# -- 404 instead of 403 ---------------------------------------------------------------------


def test_a_refusal_is_403_unless_hidden_then_it_reads_as_missing() -> None:
    theirs = Doc(7, "alice")
    with pytest.raises(PermissionDenied):
        check_object_permission(theirs, "read", identity=BOB)
    with pytest.raises(NotFound) as hidden:
        check_object_permission(theirs, "read", identity=BOB, hide=True)
    assert hidden.value.detail == "no such object"  # as for None: one answer
    with pytest.raises(NotFound) as named:
        check_object_permission(theirs, "read", identity=BOB, hide=True, missing="no such item")
    assert named.value.detail == "no such item"
    with pytest.raises(NotFound):  # None (nothing loaded) reads as missing too
        check_object_permission(None, "read", identity=BOB, hide=True)
    assert check_object_permission(theirs, "read", identity=ALICE, hide=True) is ALICE
    with pytest.raises(NotAuthenticated):  # hiding never turns a 401 into a 404
        check_object_permission(theirs, "read", identity=ANONYMOUS, hide=True)


def test_hiding_everywhere_and_a_guard_that_says_otherwise() -> None:
    theirs = Doc(7, "alice")
    with as_identity(BOB, hide_objects=True):
        with pytest.raises(NotFound):
            check_object_permission(theirs, "read")
        with pytest.raises(PermissionDenied):
            check_object_permission(theirs, "read", hide=False)
        with as_identity(BOB), pytest.raises(NotFound):  # a nested block keeps it
            check_object_permission(theirs, "read")
    with as_identity(BOB), pytest.raises(PermissionDenied):  # and it ends with the block
        check_object_permission(theirs, "read")


def test_require_object_permission_hides_on_sync_and_async_functions() -> None:
    docs = {1: AsyncDoc(1, "alice"), 2: AsyncDoc(2, "bob")}

    @require_object_permission("read", load=lambda doc_id: docs[doc_id], hide=True)
    async def show(doc_id: int) -> int:
        return doc_id

    async def main() -> None:
        with as_identity(ALICE):
            assert await show(1) == 1
            with pytest.raises(NotFound):
                await show(2)

    asyncio.run(main())

    sync_docs = {1: Note(1, "alice"), 2: Note(2, "bob")}

    @require_object_permission("read", load=lambda doc_id: sync_docs[doc_id], policy=IsOwner())
    def show_sync(doc_id: int) -> int:
        return doc_id

    with as_identity(ALICE, hide_objects=True):
        assert show_sync(1) == 1
        with pytest.raises(NotFound):
            show_sync(2)
    with as_identity(ALICE), pytest.raises(PermissionDenied):
        show_sync(2)


def test_async_check_object_permission_hides_too() -> None:
    async def main() -> None:
        with pytest.raises(NotFound):
            await check_object_permission_async(
                AsyncDoc(1, "alice"), "read", identity=BOB, hide=True
            )
        assert await check_object_permission_async(AsyncDoc(1, "alice"), "read", identity=ALICE)

    asyncio.run(main())


# -- the same decision in SQL ----------------------------------------------------------------

metadata = sa.MetaData()
ITEMS = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("team", sa.String(64), nullable=True),
)
ITEM_GROUPS = sa.Table(
    "item_groups",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("group_name", sa.String(64), primary_key=True),
)
SHARING = Sharing(ITEM_GROUPS, "item_id")

NAMES = ["alice", "bob", "carol"]
GROUPS = ["red", "blue", "green"]

#: Policies whose SQL form is checked against the Python decision.
POLICIES: dict[str, Policy] = {
    "admin-or-owner": HasRole("admin") | IsOwner(),
    "owner": IsOwner(),
    "owner-only": IsOwner(groups_attr=None),
    "reader-and-owner": HasPermission("items:read") & IsOwner(),
    "not-admin-or-owner": ~HasRole("admin") | IsOwner(groups_attr=None),
    "authenticated": IsAuthenticated(),
    "admin": HasRole("admin"),
}


@dataclass(frozen=True)
class Row:
    id: int
    owner: str
    shared_with: tuple[str, ...]


rows_strategy = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sets(st.sampled_from(GROUPS), max_size=3)),
    max_size=12,
)
identity_strategy = st.one_of(
    st.just(ANONYMOUS),
    st.builds(
        lambda name, roles, groups: who(name, tuple(roles), tuple(groups)),
        st.sampled_from(NAMES),
        st.sets(st.sampled_from(["viewer", "admin"]), max_size=2),
        st.sets(st.sampled_from(GROUPS), max_size=3),
    ),
)


@pytest.fixture(scope="module")
def sqlite_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _load(engine: sa.Engine, made: list[tuple[str, set[str]]]) -> list[Row]:
    rows = [Row(n + 1, owner, tuple(sorted(groups))) for n, (owner, groups) in enumerate(made)]
    with engine.begin() as db:
        db.execute(ITEM_GROUPS.delete())
        db.execute(ITEMS.delete())
        if rows:
            db.execute(ITEMS.insert(), [{"id": r.id, "owner": r.owner} for r in rows])
        shares = [{"item_id": r.id, "group_name": g} for r in rows for g in r.shared_with]
        if shares:
            db.execute(ITEM_GROUPS.insert(), shares)
    return rows


def _visible_ids(engine: sa.Engine, identity: Identity, policy: Policy) -> list[int]:
    query = (
        sa.select(ITEMS.c.id)
        .where(visible_rows(identity, policy, ITEMS, sharing=SHARING))
        .order_by(ITEMS.c.id)
    )
    with engine.connect() as db:
        return list(db.scalars(query))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(made=rows_strategy, identity=identity_strategy, name=st.sampled_from(sorted(POLICIES)))
def test_the_sql_condition_keeps_exactly_what_filter_keeps(
    sqlite_engine: sa.Engine, made: list[tuple[str, set[str]]], identity: Identity, name: str
) -> None:
    rows = _load(sqlite_engine, made)
    policy = POLICIES[name]
    expected = [r.id for r in filter_objects(identity, "read", rows, policy=policy)]
    assert _visible_ids(sqlite_engine, identity, policy) == expected


@pytest.mark.parametrize("database", ["postgres_database", "mariadb_database"])
def test_the_sql_condition_on_a_database_server(
    database: str, request: pytest.FixtureRequest
) -> None:
    """Real servers, with names that MySQL's default collations would confuse (case and
    accents): the condition keeps what Python keeps, byte for byte."""
    from authgate.stores.sql import parse_sql_url

    url = parse_sql_url(request.getfixturevalue(database)).sync_url
    engine = sa.create_engine(url)
    schema = sa.MetaData()
    suffix = uuid.uuid4().hex[:8]
    items = sa.Table(
        f"lists_items_{suffix}",
        schema,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        mysql_charset="utf8mb4",
    )
    groups = sa.Table(
        f"lists_item_groups_{suffix}",
        schema,
        sa.Column("item_id", sa.Integer, sa.ForeignKey(items.c.id), primary_key=True),
        sa.Column("group_name", sa.String(64), primary_key=True),
        mysql_charset="utf8mb4",
    )
    schema.create_all(engine)
    try:
        made = [
            ("alice", set()),
            ("bob", {"red"}),
            ("carol", {"blue", "red"}),
            ("carol", set()),
            ("josé", {"Red"}),
            ("JOSE", set()),
            ("jose", set()),
        ]
        rows = [Row(n + 1, o, tuple(sorted(g))) for n, (o, g) in enumerate(made)]
        with engine.begin() as db:
            db.execute(items.insert(), [{"id": r.id, "owner": r.owner} for r in rows])
            db.execute(
                groups.insert(),
                [{"item_id": r.id, "group_name": g} for r in rows for g in r.shared_with],
            )
        jose, red = who("jose"), who("dave", groups=("red",))
        for identity in (ANONYMOUS, ALICE, red, ADMIN, BOB, jose):
            for policy in POLICIES.values():
                query = sa.select(items.c.id).where(
                    visible_rows(identity, policy, items, sharing=Sharing(groups, "item_id"))
                )
                with engine.connect() as db:
                    found = sorted(db.scalars(query))
                expected = [r.id for r in filter_objects(identity, "read", rows, policy=policy)]
                assert found == expected, (identity.username, policy.describe())
        # What the comparison of names must not confuse: "josé", "JOSE"; "Red" and "red".
        owner_only = visible_rows(
            who("jose", groups=("red",)), IsOwner(), items, sharing=Sharing(groups, "item_id")
        )
        with engine.connect() as db:
            assert sorted(db.scalars(sa.select(items.c.id).where(owner_only))) == [2, 3, 7]
    finally:
        schema.drop_all(engine)
        engine.dispose()


def test_a_single_group_column_and_a_mapped_class(sqlite_engine: sa.Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Item(Base):  # the same table, declared the ORM way
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        owner: Mapped[str]
        team: Mapped[str | None]

    with sqlite_engine.begin() as db:
        db.execute(ITEM_GROUPS.delete())
        db.execute(ITEMS.delete())
        db.execute(
            ITEMS.insert(),
            [
                {"id": 1, "owner": "alice", "team": None},
                {"id": 2, "owner": "carol", "team": "red"},
                {"id": 3, "owner": "carol", "team": "blue"},
            ],
        )
        db.execute(ITEM_GROUPS.insert(), [{"item_id": 3, "group_name": "red"}])
    by_team = IsOwner(groups_attr="team")
    red_alice = who("alice", groups=("red",))
    with sqlite_engine.connect() as db:
        query = sa.select(Item.id).where(visible_rows(red_alice, by_team, Item)).order_by(Item.id)
        assert list(db.scalars(query)) == [1, 2]
        shared = visible_rows(red_alice, IsOwner(), Item, sharing=SHARING)
        assert list(db.scalars(sa.select(Item.id).where(shared).order_by(Item.id))) == [1, 3]


def test_a_policy_sql_cannot_express_is_refused_not_guessed() -> None:
    class Weekday(Policy):
        def allows(self, identity: Identity) -> bool:
            return True

        def allows_object(self, identity: Identity, obj: object) -> bool:
            return False

    with pytest.raises(TypeError, match="where\\(identity, rows\\)"):
        visible_rows(ALICE, HasRole("admin") | Weekday(), ITEMS)
    with pytest.raises(TypeError, match="sharing=Sharing"):
        visible_rows(ALICE, IsOwner(), ITEMS.c.id.table.alias("x").select().subquery())

    class Published(Weekday):
        def where(self, identity: Identity, rows: Rows) -> Any:
            return rows.column("owner") != "nobody"

    assert str(visible_rows(ALICE, Published(), ITEMS)) == "items.owner != :owner_1"
    assert str(visible_rows(ANONYMOUS, Published() & IsAuthenticated(), ITEMS)) == "false"
