"""Authorization in process: authgate's permission decisions next to pycasbin's
`enforce` on the same role graph, cold and warm, and what a filtered list costs, in
Python (`filter_objects` on 1,000 objects) and in SQL (`visible_rows` on 100,000 rows).

Run: ``python -m benchmarks.authorization`` from the project root (needs the bench
extra: ``pip install -e '.[all,dev,bench]'``); ``--quick`` runs tiny sizes to check
that it works, its figures are not for quoting.

The policy is one role graph written twice: a `RolePolicy` whose ``include`` says
editor and billing include viewer and admin includes both, and a casbin RBAC model
whose ``g`` links say the same.  A group is a casbin role too, and a user's direct
grant a casbin rule with the user as its subject.  Both systems answer every question
before anything is timed, and the run stops at the first one they answer differently
(`Disagreement`).  Reported: decisions (or lists, or queries) per second, the median of
the rounds (`timing.measure`), and ratios; never a timed assertion.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import casbin
import sqlalchemy as sa

from authgate import HasRole, Identity, IsOwner, RoleHierarchy, RolePolicy
from authgate.caches import KINDS, stats
from authgate.permissions import Policy, filter_objects
from authgate.permissions.sql import Sharing, visible_rows

if __package__:  # `python -m benchmarks.authorization`: the benchmarks import each other by name
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import measure

ROOT = Path(__file__).resolve().parent
DECISIONS_PER_SET = next(kind.bound for kind in KINDS if kind.name == "permission decisions")

# -- the policy, written for authgate -----------------------------------------------------

GRAPH = {"admin": ["editor", "billing"], "editor": ["viewer"], "billing": ["viewer"]}

CONTENT = (
    "projects", "documents", "reports", "dashboards", "comments", "tasks",
    "milestones", "wikis", "files", "releases", "issues", "boards",
)  # fmt: skip
MONEY = (
    "invoices", "payments", "subscriptions", "refunds", "credit-notes", "tax-rates",
    "price-plans", "billing-accounts",
)  # fmt: skip
ADMINISTRATION = (
    "users", "teams", "roles", "api-keys", "webhooks", "integrations", "audit-logs",
    "settings", "sso",
)  # fmt: skip
OPERATIONS = ("tickets", "customers", "incidents", "deployments", "servers")
RESOURCES = CONTENT + MONEY + ADMINISTRATION + OPERATIONS

#: What each role grants itself; it also holds what the roles it includes grant.
ROLE_GRANTS: dict[str, list[str]] = {
    "viewer": [f"{kind}:read" for kind in CONTENT],
    "editor": [
        *[f"{kind}:write" for kind in CONTENT[:10]],
        *["comments:*", "tasks:delete", "files:delete", "releases:approve"],
    ],
    "billing": [
        *[f"{kind}:read" for kind in MONEY],
        *["invoices:write", "invoices:approve", "payments:write", "refunds:issue"],
        "subscriptions:write",
    ],
    "admin": [
        *[f"{kind}:*" for kind in ADMINISTRATION],
        *["projects:delete", "documents:delete", "reports:write", "dashboards:write"],
    ],
}
GROUP_GRANTS: dict[str, list[str]] = {
    "support": ["tickets:*", "customers:read", "customers:write"],
    "security": ["audit-logs:read", "incidents:*", "users:read"],
    "ops": ["deployments:read", "deployments/staging:approve", "servers/web-1:restart"],
}
#: The actions asked about: every resource's, and some resources' own.
ACTIONS = ("read", "write", "delete")
EXTRA_ACTIONS = {
    "invoices": ("approve",),
    "refunds": ("issue",),
    "releases": ("approve",),
    "deployments": ("approve",),
    "servers": ("restart",),
}
NAMED_OBJECTS = {
    "deployments": ("production", "staging", "dev"),
    "servers": ("web-1", "web-2", "db-1"),
}
#: Objects of each other resource: ``projects/1`` .. ``projects/12``.
OBJECTS_PER_RESOURCE = 12

#: (roles, weight): one or two roles each.
ROLE_MIX: list[tuple[tuple[str, ...], int]] = [
    (("viewer",), 45),
    (("editor",), 25),
    (("billing",), 8),
    (("viewer", "billing"), 7),
    (("editor", "billing"), 10),
    (("admin",), 3),
    (("admin", "editor"), 2),
]


def role_policy(hierarchy: RoleHierarchy | None = None) -> RolePolicy:
    """The role graph and what each role and group grants, as authgate takes it."""
    return RolePolicy(
        ROLE_GRANTS, hierarchy=hierarchy or RoleHierarchy.graph(GRAPH), groups=GROUP_GRANTS
    )


@dataclass(frozen=True)
class Sizes:
    """How much of everything one run measures."""

    users: int = 10_000
    questions: int = 20_000
    #: pycasbin answers every question before the timing, but is timed on this many
    #: (it takes about a millisecond each).
    casbin_questions: int = 1_000
    #: Questions asked cold in each round (each needs a policy of its own).
    cold: int = 1_000
    objects: int = 1_000
    rows: int = 100_000
    #: How long one measured round of a fast call lasts (more calls per round).
    round_seconds: float = 0.05


FULL = Sizes()
QUICK = Sizes(
    users=200,
    questions=400,
    casbin_questions=50,
    cold=50,
    objects=100,
    rows=2_000,
    round_seconds=0.002,
)


@dataclass(frozen=True)
class Member:
    """A user: roles, groups and direct grants, the same in both systems."""

    name: str
    roles: frozenset[str]
    groups: frozenset[str]
    direct: frozenset[str]


@dataclass(frozen=True)
class Question:
    """May user number `user` do `action` on `resource`?"""

    user: int
    resource: str
    action: str

    @property
    def permission(self) -> str:
        return f"{self.resource}:{self.action}"


@dataclass(frozen=True)
class World:
    """The users and the questions both systems are asked."""

    members: list[Member]
    questions: list[Question]

    @classmethod
    def draw(cls, sizes: Sizes, seed: int = 2026) -> World:
        """Drawn with a fixed seed: every run asks the same."""
        rng = random.Random(seed)  # noqa: S311 - a replayable draw
        mixes = [roles for roles, _ in ROLE_MIX]
        weights = [weight for _, weight in ROLE_MIX]
        members: list[Member] = []
        for index in range(sizes.users):
            roles = frozenset(rng.choices(mixes, weights)[0])
            draw = rng.random()
            count = 2 if draw < 0.03 else 1 if draw < 0.18 else 0
            groups = frozenset(rng.sample(sorted(GROUP_GRANTS), count))
            direct: frozenset[str] = frozenset()
            if rng.random() < 0.01:
                kind = rng.choice(("projects", "reports", "invoices"))
                action = {"projects": "write", "reports": "delete", "invoices": "approve"}[kind]
                direct = frozenset({f"{kind}/{rng.randint(1, OBJECTS_PER_RESOURCE)}:{action}"})
            members.append(Member(f"user{index:06d}", roles, groups, direct))
        return cls(members, [_question(rng, members) for _ in range(sizes.questions)])

    def without_own_grants(self, questions: int) -> World:
        """The same users with their roles and groups only, asked the first `questions`."""
        members = [replace(member, direct=frozenset()) for member in self.members]
        return World(members, self.questions[:questions])

    def cold_questions(self, count: int, round_: int) -> list[Question]:
        """`count` questions asked nowhere before in this process: the first ones, each
        about a new object below its own (so each answer is the same as its original's)."""
        return [
            Question(q.user, f"{q.resource}/notes/{round_}-{n}", q.action)
            for n, q in enumerate(self.questions[:count])
        ]


def _question(rng: random.Random, members: list[Member]) -> Question:
    user = rng.randrange(len(members))
    direct = members[user].direct
    if direct and rng.random() < 0.5:  # ask about what was granted to them alone
        resource, _, action = next(iter(direct)).rpartition(":")
    else:
        kind = rng.choice(RESOURCES)
        names = NAMED_OBJECTS.get(kind)
        name = rng.choice(names) if names else str(rng.randint(1, OBJECTS_PER_RESOURCE))
        resource = f"{kind}/{name}"
        action = rng.choice(ACTIONS + EXTRA_ACTIONS.get(kind, ()))
    if rng.random() < 0.2:
        resource += f"/attachments/{rng.randint(1, 3)}"
    return Question(user, resource, action)


def identity_of(policy: RolePolicy, member: Member) -> Identity:
    """The identity a gate builds for `member` (as `identity_from_claims` does)."""
    grants = policy.permissions_for(member.roles, member.groups, member.direct)
    return Identity(
        username=member.name,
        roles=member.roles,
        groups=member.groups,
        permissions=grants.grants,
        is_authenticated=True,
        grants=grants,
    )


# -- the same policy, written for casbin --------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && (r.act == p.act || p.act == "*")
"""


def casbin_objects(resource: str) -> list[str]:
    """The keyMatch2 patterns for what an authgate grant on `resource` covers.  A
    question always names an object (``projects/7``, never ``projects``), so a grant on
    a whole kind is ``projects/*``; a grant on one object covers it and what is below
    it: ``projects/7`` and ``projects/7/*``."""
    if "*" in resource:
        raise ValueError(f"{resource}: a '*' segment has no keyMatch2 twin here")
    return [f"{resource}/*"] if "/" not in resource else [resource, f"{resource}/*"]


def casbin_policy(world: World) -> list[str]:
    """The policy file's lines: role, group and direct rules, then the role graph and
    each user's roles and groups."""
    lines: list[str] = []

    def rules(subject: str, grants: Iterable[str]) -> None:
        for grant in sorted(grants):
            resource, _, action = grant.rpartition(":")
            lines.extend(f"p, {subject}, {obj}, {action}" for obj in casbin_objects(resource))

    for role, grants in ROLE_GRANTS.items():
        rules(role, grants)
    for group, grants in GROUP_GRANTS.items():
        rules(f"group:{group}", grants)
    for member in world.members:
        rules(member.name, member.direct)
    lines += [f"g, {role}, {below}" for role, included in GRAPH.items() for below in included]
    for member in world.members:
        lines += [f"g, {member.name}, {role}" for role in sorted(member.roles)]
        lines += [f"g, {member.name}, group:{group}" for group in sorted(member.groups)]
    return lines


@dataclass(frozen=True)
class CasbinFiles:
    """The model and policy files an enforcer loads."""

    model: Path
    policy: Path

    @classmethod
    def write(cls, directory: Path, lines: list[str]) -> CasbinFiles:
        directory.mkdir(parents=True, exist_ok=True)
        files = cls(directory / "model.conf", directory / "policy.csv")
        files.model.write_text(CASBIN_MODEL)
        files.policy.write_text("\n".join(lines) + "\n")
        return files

    def enforcer(self) -> casbin.Enforcer:
        return casbin.Enforcer(str(self.model), str(self.policy))

    def counts(self) -> tuple[int, int]:
        """How many rules (``p``) and role links (``g``) the policy file holds."""
        lines = self.policy.read_text().splitlines()
        rules = sum(line.startswith("p,") for line in lines)
        links = sum(line.startswith("g,") for line in lines)
        return rules, links


class Disagreement(RuntimeError):
    """authgate and casbin answered a question differently: the two policies are not
    the same policy, so timing them would compare nothing."""


def check_agreement(
    world: World, questions: list[Question], ours: Sequence[bool], theirs: Sequence[bool]
) -> int:
    """How many of `questions` are allowed, once both systems' answers are the same."""
    for question, mine, casbins in zip(questions, ours, theirs, strict=True):
        if mine != casbins:
            raise Disagreement(
                f"{world.members[question.user].name} asks {question.permission}: authgate "
                f"answers {mine}, casbin {casbins}"
            )
    return sum(ours)


def ask_authgate(identities: list[Identity], questions: list[Question]) -> list[bool]:
    return [identities[q.user].can(q.permission) for q in questions]


def ask_casbin(enforcer: casbin.Enforcer, world: World, questions: list[Question]) -> list[bool]:
    names = [m.name for m in world.members]
    return [bool(enforcer.enforce(names[q.user], q.resource, q.action)) for q in questions]


# -- permission decisions -----------------------------------------------------------------


def timed(fn: Callable[[], object], round_seconds: float) -> float:
    """Median µs per call of `fn` over the rounds of `timing.measure`, each round
    as many calls as last about `round_seconds`."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return statistics.median(measure(fn, max(1, round(round_seconds / max(once, 1e-9)))))


def agree(world: World, identities: list[Identity], enforcer: casbin.Enforcer) -> int:
    """How many of the world's questions are allowed, once authgate (`identities`) and
    casbin (`enforcer`) have answered each of them the same; else `Disagreement`."""
    return check_agreement(
        world,
        world.questions,
        ask_authgate(identities, world.questions),
        ask_casbin(enforcer, world, world.questions),
    )


def warm_pair(
    world: World, identities: list[Identity], enforcer: casbin.Enforcer, sizes: Sizes
) -> tuple[float, float]:
    """µs per decision of pycasbin and of authgate, asked the world's first questions
    again (the agreement check asked each once already)."""
    asked = world.questions[: sizes.casbin_questions]
    names = [world.members[q.user].name for q in asked]
    theirs = [(name, q.resource, q.action) for name, q in zip(names, asked, strict=True)]
    ours = [(identities[q.user], q.permission) for q in asked]

    def casbin_pass() -> None:
        for name, obj, act in theirs:
            enforcer.enforce(name, obj, act)

    return (
        timed(casbin_pass, sizes.round_seconds) / len(asked),
        timed(lambda: ask_all(ours), sizes.round_seconds) / len(asked),
    )


def ask_all(pairs: list[tuple[Identity, str]]) -> None:
    for identity, permission in pairs:
        identity.can(permission)


def warm_authgate(
    world: World, identities: list[Identity], sizes: Sizes
) -> tuple[float, float, float]:
    """µs per decision of authgate asked every question again, and the share of them
    answered by a decision cache, and of the others by the parsed-grant cache."""
    pairs = [(identities[q.user], q.permission) for q in world.questions]
    for kind in KINDS:
        kind.reset()
    us = timed(lambda: ask_all(pairs), sizes.round_seconds) / len(pairs)
    counts = stats()
    decided, undecided = counts["permission decisions"]
    parsed, unparsed = counts["parsed grants"]
    return us, decided / max(1, decided + undecided), parsed / max(1, parsed + unparsed)


@dataclass(frozen=True)
class Cold:
    """µs per first decision, and ms to start and decide once (medians of the rounds)."""

    casbin: float
    authgate: float
    casbin_start: float
    authgate_start: float


def cold_decisions(world: World, sizes: Sizes, files: CasbinFiles, rounds: int = 5) -> Cold:
    """Each round asks questions never asked before: authgate each with a policy that
    has built no permission set yet, pycasbin with an enforcer just loaded."""
    hierarchy = RoleHierarchy.graph(GRAPH)
    samples: dict[str, list[float]] = {name: [] for name in Cold.__dataclass_fields__}
    for round_ in range(rounds):
        fresh = world.cold_questions(sizes.cold, round_)
        work = [(role_policy(hierarchy), world.members[q.user], q.permission) for q in fresh]
        ours: list[bool] = []
        start = time.perf_counter()
        for policy, member, permission in work:
            ours.append(identity_of(policy, member).can(permission))
        samples["authgate"].append((time.perf_counter() - start) / len(work) * 1e6)
        del work

        first = fresh[0]
        start = time.perf_counter()
        identity_of(role_policy(), world.members[first.user]).can(first.permission)
        samples["authgate_start"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        enforcer = files.enforcer()
        enforcer.enforce(world.members[first.user].name, first.resource, first.action)
        samples["casbin_start"].append((time.perf_counter() - start) * 1e3)

        start = time.perf_counter()
        theirs = ask_casbin(enforcer, world, fresh)
        samples["casbin"].append((time.perf_counter() - start) / len(fresh) * 1e6)
        check_agreement(world, fresh, ours, theirs)
    return Cold(**{name: statistics.median(values) for name, values in samples.items()})


def bench_decisions(world: World, sizes: Sizes, directory: Path) -> str:
    """Warm and cold decisions in both systems, once they are seen to agree."""
    files = CasbinFiles.write(directory / "all", casbin_policy(world))
    policy = role_policy()
    identities = [identity_of(policy, member) for member in world.members]
    allowed = agree(world, identities, files.enforcer())
    casbin_warm, authgate_same = warm_pair(world, identities, files.enforcer(), sizes)
    authgate_all, decision_hits, parsed_hits = warm_authgate(world, identities, sizes)

    # pycasbin tests its rules one by one: the same users without their own grants.
    fewer = world.without_own_grants(sizes.casbin_questions)
    fewer_files = CasbinFiles.write(directory / "fewer", casbin_policy(fewer))
    fewer_identities = [identity_of(policy, member) for member in fewer.members]
    agree(fewer, fewer_identities, fewer_files.enforcer())
    casbin_fewer, authgate_fewer = warm_pair(fewer, fewer_identities, fewer_files.enforcer(), sizes)
    cold = cold_decisions(world, sizes, files)

    rules, links = files.counts()
    fewer_rules, _ = fewer_files.counts()
    granted = sum(1 for member in world.members if member.direct)
    sets = len({identity.grants.grants for identity in identities})
    questions = world.questions
    distinct = len({q.permission for q in questions})
    asked = min(len(questions), sizes.casbin_questions)

    def row(name: str, us: float, versus: float) -> str:
        ratio = versus / us
        return f"| {name} | {1e6 / us:,.0f} | {us:,.2f} | {ratio:,.{1 if ratio < 100 else 0}f}x |"

    return "\n".join(
        [
            "The same role graph in both (editor and billing include viewer, admin "
            f"includes both; {len(RESOURCES)} resources): {len(world.members):,} users "
            f"with one or two roles each, some in one or two of {len(GROUP_GRANTS)} "
            f"groups, {granted} with a grant of their own; {rules} casbin rules "
            f"(keyMatch2; {rules - fewer_rules} of them those users' own grants) and "
            f"{links:,} role links.  {len(questions):,} questions ({distinct:,} distinct "
            f"permissions, {allowed / len(questions):.0%} allowed), answered the same by "
            "both systems, as were all the cold ones and those of the world without "
            "users' own grants.",
            "",
            "| permission decisions, same role graph | per second | µs each | vs pycasbin |",
            "|---|---|---|---|",
            row(
                f"pycasbin `enforce`, warm (the first {asked:,} questions, asked again)",
                casbin_warm,
                casbin_warm,
            ),
            row(
                f"authgate `Identity.can`, warm (the same {asked:,} questions)",
                authgate_same,
                casbin_warm,
            ),
            row(
                f"authgate `Identity.can`, warm (all {len(questions):,} questions)",
                authgate_all,
                casbin_warm,
            ),
            row(
                f"pycasbin `enforce`, warm, no user with grants of their own ({fewer_rules} "
                f"rules; {asked:,} questions)",
                casbin_fewer,
                casbin_fewer,
            ),
            row(
                "authgate `Identity.can`, warm, no user with grants of their own "
                f"(the same {asked:,} questions)",
                authgate_fewer,
                casbin_fewer,
            ),
            row(
                "pycasbin `enforce`, cold: an enforcer just loaded, questions never asked",
                cold.casbin,
                cold.casbin,
            ),
            row(
                "authgate, cold: `permissions_for` on a policy that has built no set, "
                "`Identity`, `can` of a permission never seen",
                cold.authgate,
                cold.casbin,
            ),
            "",
            "| start-up, then one decision | ms |",
            "|---|---|",
            f"| pycasbin: `Enforcer` loads the model and the policy file ({rules} rules, "
            f"{links:,} links) | {cold.casbin_start:,.1f} |",
            "| authgate: `RolePolicy` from the graph and the grants (a user's roles come "
            f"with the identity) | {cold.authgate_start:,.2f} |",
            "",
            f"Warm: the identities hold {sets} distinct permission sets.  Asked all the "
            f"questions, authgate answered {decision_hits:.0%} of them from their set's "
            f"decision cache ({DECISIONS_PER_SET:,} entries per set, least recently used "
            f"forgotten first); the others were decided on the set's grants, "
            f"{parsed_hits:.0%} of their permission strings found in the parsed-grant "
            "cache.  pycasbin's `Enforcer` keeps no decision cache: each `enforce` "
            "evaluates the matcher rule by rule (the `g` call walking the role links) "
            "until one allows, so its cost grows with the rules and a warm decision costs "
            "what a cold one does.  Cold, for authgate: a `RolePolicy` that has built no "
            "permission set yet (one per question, built unmeasured) computes the "
            "identity's set from its roles, groups and direct grants, and the question "
            "names an object never asked about (its permission string never parsed nor "
            "decided); a running process pays this once per combination of roles, "
            "groups and grants, not per user.  Cold, for pycasbin: an enforcer just "
            "loaded from the files (the load timed apart, in the second table), asked "
            "those questions.",
        ]
    )


# -- filter on 1,000 objects --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A model with no hooks: ``documents:read`` decides, once per list."""

    id: int
    owner: str
    shared_with: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HookedDocument:
    """A model whose own hook decides, object by object (the owner's rule)."""

    id: int
    owner: str
    shared_with: tuple[str, ...]

    def has_object_permission(self, identity: Identity, action: str) -> bool:
        return action == "read" and (
            self.owner == identity.username or not identity.groups.isdisjoint(self.shared_with)
        )


def documents(count: int, owner: str, group: str, seed: int = 7) -> list[Document]:
    """`count` documents, about 10% owned by `owner`, 10% shared with `group` and 20%
    with other groups."""
    rng = random.Random(seed)  # noqa: S311 - a replayable draw
    made = []
    for index in range(count):
        who = owner if rng.random() < 0.1 else f"user{rng.randrange(1, 50):06d}"
        draw = rng.random()
        shared = (group,) if draw < 0.1 else ("sales",) if draw < 0.3 else ()
        made.append(Document(index, who, shared))
    return made


def bench_filter(sizes: Sizes) -> str:
    """`filter_objects` on one list, by policy, by hooks and by class, next to a list
    comprehension that tests ownership by hand."""
    policy = role_policy()
    alice = identity_of(
        policy, Member("alice", frozenset({"editor"}), frozenset({"support"}), frozenset())
    )
    root = identity_of(policy, Member("root", frozenset({"admin"}), frozenset(), frozenset()))
    access: Policy = HasRole("admin", hierarchy=policy.hierarchy) | IsOwner()
    docs = documents(sizes.objects, alice.username, "support")
    hooked = [HookedDocument(d.id, d.owner, d.shared_with) for d in docs]

    def by_hand() -> list[Document]:
        name, groups = alice.username, alice.groups
        return [d for d in docs if d.owner == name or not groups.isdisjoint(d.shared_with)]

    floor = [d.id for d in by_hand()]
    rows: list[tuple[str, Callable[[], list[Any]], list[int]]] = [
        ("a list comprehension testing ownership by hand (the floor)", by_hand, floor),
        (
            # A "|" in a table cell is escaped, even within backquotes.
            '`filter_objects`, policy `HasRole("admin") \\| IsOwner()`, a non-admin',
            lambda: filter_objects(alice, "read", docs, policy=access),
            floor,
        ),
        (
            "the same, an admin (the policy still asked object by object)",
            lambda: filter_objects(root, "read", docs, policy=access),
            [d.id for d in docs],
        ),
        (
            "`filter_objects`, objects with a `has_object_permission` hook",
            lambda: filter_objects(alice, "read", hooked),
            floor,
        ),
        (
            "`filter_objects`, objects without hooks (`documents:read`, decided once)",
            lambda: filter_objects(alice, "documents:read", docs),
            [d.id for d in docs],
        ),
    ]
    measured = []
    for name, fn, expected in rows:
        kept = [obj.id for obj in fn()]
        if kept != expected:
            raise RuntimeError(f"{name}: kept {len(kept)} objects, expected {len(expected)}")
        measured.append((name, len(kept), timed(fn, sizes.round_seconds)))
    base = measured[0][2]
    lines = [
        f"| `filter` on {len(docs):,} objects | kept | µs per list | objects per second "
        "| vs by hand |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {kept:,} | {us:,.1f} | {len(docs) / us * 1e6:,.0f} | {us / base:.1f}x |"
        for name, kept, us in measured
    ]
    owned = sum(d.owner == alice.username for d in docs)
    shared = sum(d.shared_with == ("support",) for d in docs)
    return "\n".join(
        [
            f"The caller is an editor in the group support who owns {owned} of the objects; "
            f"{shared} are shared with support.",
            "",
            *lines,
        ]
    )


# -- the same filter in SQL ---------------------------------------------------------------

metadata = sa.MetaData()
ITEMS = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
)
ITEM_GROUPS = sa.Table(
    "item_groups",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("group_name", sa.String(64), primary_key=True),
)
SHARING = Sharing(ITEM_GROUPS, "item_id")


def fill(engine: sa.Engine, count: int, seed: int = 11) -> None:
    """`count` items among 100 owners, 10% of them shared with one of 10 groups."""
    rng = random.Random(seed)  # noqa: S311 - a replayable draw
    owners = [f"user{n:06d}" for n in range(100)]
    groups = ["support", *[f"team-{n}" for n in range(9)]]
    items = [{"id": n, "owner": rng.choice(owners), "title": f"item {n}"} for n in range(count)]
    shares = [
        {"item_id": n, "group_name": rng.choice(groups)} for n in range(count) if rng.random() < 0.1
    ]
    with engine.begin() as db:
        db.execute(ITEMS.insert(), items)
        db.execute(ITEM_GROUPS.insert(), shares)


def bench_sql(sizes: Sizes) -> str:
    """`visible_rows` in the query next to loading every row and filtering in Python."""
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    fill(engine, sizes.rows)
    policy = role_policy()
    caller = identity_of(
        policy, Member("user000000", frozenset({"editor"}), frozenset({"support"}), frozenset())
    )
    access: Policy = HasRole("admin", hierarchy=policy.hierarchy) | IsOwner()

    def in_sql() -> list[Any]:
        query = sa.select(ITEMS).where(visible_rows(caller, access, ITEMS, sharing=SHARING))
        with engine.connect() as db:
            return list(db.execute(query).all())

    def in_python() -> list[Any]:
        with engine.connect() as db:
            shared: dict[int, list[str]] = {}
            for item_id, group in db.execute(sa.select(ITEM_GROUPS)):
                shared.setdefault(item_id, []).append(group)
            rows = [
                {"id": key, "owner": owner, "title": title, "shared_with": shared.get(key, ())}
                for key, owner, title in db.execute(sa.select(ITEMS))
            ]
        return filter_objects(caller, "read", rows, policy=access)

    visible = in_sql()
    owned = sum(row.owner == caller.username for row in visible)
    found = sorted(row.id for row in visible)
    if found != sorted(row["id"] for row in in_python()):
        raise RuntimeError("visible_rows and filter_objects kept different rows")
    query = sa.select(ITEMS).where(visible_rows(caller, access, ITEMS, sharing=SHARING))
    literal = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as db:
        plan = db.exec_driver_sql(f"EXPLAIN QUERY PLAN {literal}").all()
    sql_ms = timed(in_sql, sizes.round_seconds) / 1e3
    python_ms = timed(in_python, sizes.round_seconds) / 1e3
    engine.dispose()
    lines = [
        f"| visible rows of {sizes.rows:,} (SQLite in memory) | rows kept | ms per query "
        "| table rows per second | vs load all |",
        "|---|---|---|---|---|",
    ]
    for name, ms in (
        ("load every row and its groups, `filter_objects` in Python", python_ms),
        ("`select(items).where(visible_rows(...))`", sql_ms),
    ):
        lines.append(
            f"| {name} | {len(found):,} | {ms:,.1f} | {sizes.rows / ms * 1e3:,.0f} | "
            f"{python_ms / ms:.1f}x |"
        )
    return "\n".join(
        [
            f"The same policy as a SQL condition: {sizes.rows:,} items among 100 owners "
            "(an index on the owner), 10% shared with one of 10 groups (a sharing table, "
            f"its key (item, group)); the caller owns {owned:,} and sees "
            f"{len(found) - owned:,} more through its one group.  SQLite's plan: "
            f"{'; '.join(str(step[-1]) for step in plan)}.",
            "",
            *lines,
        ]
    )


# -- the section --------------------------------------------------------------------------


def commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


def run(sizes: Sizes = FULL) -> str:
    """Every authorization measurement, as a markdown section."""
    world = World.draw(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        decisions = bench_decisions(world, sizes, Path(tmp))
    lines = [
        "### Authorization, in process",
        "",
        decisions,
        "",
        bench_filter(sizes),
        "",
        bench_sql(sizes),
        "",
        f"casbin {importlib.metadata.version('casbin')}, SQLAlchemy {sa.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, authgate at {commit() or 'an unknown commit'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it work?")
    args = parser.parse_args(argv)
    print(run(QUICK if args.quick else FULL))


if __name__ == "__main__":
    main()
