"""Mutation testing of authgate's security core, in one command (docs/mutation.md).

    scripts/mutation                                    # every security module
    scripts/mutation src/authgate/flows/lockout.py tokens     # a subset
    scripts/mutation 'tokens::KeyRing.verify'           # one function
    scripts/mutation --report lockout                   # re-read the last results

Runs mutmut (configured in pyproject.toml's ``[tool.mutmut]``) over the chosen modules and
prints, per module, the mutants generated and how many were killed, are equivalent (listed
with a reason in tests/mutation/equivalent.txt), only change the wording of an error
message (not tested), or survived; then the diff of every surviving mutant with its line
for the equivalence list.  A run that stops half-way resumes where it stopped.
Exits 1 if a mutant survives, 2 if the run itself failed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENT = ROOT / "tests" / "mutation" / "equivalent.txt"
PLUGIN = ROOT / "scripts" / "mutation_conftest.py"
LOG = MUTANTS / "mutmut-run.log"
INPUTS_STAMP = MUTANTS / "mutation-inputs.sha256"

# The stores' compare-and-set and atomic-counter operations: only these are mutated there.
ATOMIC = (
    "create_user",
    "update_user",
    "delete_user",
    "create_session",
    "touch_session",
    "rotate_refresh",
    "revoke_session",
    "revoke_user_sessions",
    "incr",
    "get_counter",
    "counter_ttl",
    "expire_counter",
    "reset_counter",
)

# Module -> the functions mutated in it ("*": all of them; "Class.method" or "function").
# A module added here must be in pyproject.toml's [tool.mutmut] only_mutate too.
TARGETS: dict[str, tuple[str, ...]] = {
    "src/authgate/tokens.py": ("*",),
    "src/authgate/flows/lockout.py": ("*",),
    "src/authgate/flows/sessions.py": ("*",),
    "src/authgate/flows/login.py": ("*",),
    "src/authgate/flows/identity.py": ("*",),
    "src/authgate/flows/apikeys.py": ("*",),
    "src/authgate/flows/scram.py": ("*",),
    "src/authgate/permissions/grants.py": ("*",),
    "src/authgate/permissions/roles.py": ("*",),
    "src/authgate/permissions/policies.py": ("*",),
    "src/authgate/api.py": ("*",),
    "src/authgate/stores/sqlite.py": tuple(
        f"SQLiteStore.{f}"
        for f in ("_write", "_epoch", "peek_session_user", "get_session_user", *ATOMIC)
    ),
    "src/authgate/stores/memory.py": tuple(f"MemoryStore.{f}" for f in ATOMIC),
    "src/authgate/stores/redis/logic.py": (
        *(f"_Redis._{f}" for f in (*ATOMIC, "get_session_user")),
        "_Redis.peek_session_user",
    ),
    # The session-check cache: what decides whether a cached answer still stands.
    "src/authgate/stores/cache.py": ("*",),
}

# The attack replays and regression tests guard every module.
GUARDS = ("test_attacks.py", "test_security_regressions.py", "test_hostile_input.py")
STORE_TESTS = (
    "test_store_contract.py",
    "test_mutants_stores.py",
    "test_session_cache.py",
    "test_jsonfile_store.py",
)

# Module -> the test files that must kill its mutants: its own unit tests, not the whole
# suite (of which a surviving mutant would run every test reaching its function, hours in
# all).  A mutant none of them kills is a gap in the module's own tests, even when a
# contract test over HTTP would notice.  --whole-suite runs every test instead.
TESTS: dict[str, tuple[str, ...]] = {
    "src/authgate/tokens.py": ("test_tokens.py", "test_mutants_tokens.py", "test_config.py"),
    "src/authgate/flows/lockout.py": (
        "test_lockout.py",
        "test_mutants_lockout.py",
        "test_gate.py",
        "test_flows.py",
    ),
    **{
        f"src/authgate/flows/{module}.py": (
            "test_gate.py",
            "test_mutants_sessions.py",
            "test_apikeys.py",
            "test_flows.py",
            *STORE_TESTS,
        )
        for module in ("sessions", "login", "identity")
    },
    "src/authgate/flows/apikeys.py": (
        "test_apikeys.py",
        "test_mutants_apikeys.py",
        "test_gate.py",
    ),
    "src/authgate/flows/scram.py": ("test_scram.py", "test_mutants_scram.py", "test_gate.py"),
    **{
        f"src/authgate/permissions/{module}.py": (
            "test_permissions.py",
            "test_mutants_permissions.py",
            "test_context_and_decorators.py",
            "test_registry.py",
            "test_static.py",
        )
        for module in ("grants", "roles", "policies")
    },
    "src/authgate/api.py": (  # the contract suite's in-process cases drive the whole API
        "test_api_iggy.py",
        "test_mutants_api.py",
        "test_conditional_requests.py",
        "test_openapi.py",
        "test_audit.py",
        "test_scram.py",
        "test_mutants_scram.py",
        "test_apikeys.py",
        "test_mutants_apikeys.py",
        "test_contract_apps.py",
        "test_asgi_middleware.py",
        "test_wsgi_middleware.py",
    ),
    "src/authgate/stores/sqlite.py": (*STORE_TESTS, "test_bootstrap.py", "test_lockout.py"),
    "src/authgate/stores/memory.py": (*STORE_TESTS, "test_bootstrap.py", "test_lockout.py"),
    "src/authgate/stores/redis/logic.py": (*STORE_TESTS, "test_bootstrap.py", "test_lockout.py"),
    "src/authgate/stores/cache.py": (*STORE_TESTS, "test_caches.py"),
}

KILLED = {"killed", "caught by type check"}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


# -- what to mutate -----------------------------------------------------------------------


def module_name(path: str) -> str:
    """``src/authgate/stores/sqlite.py`` -> ``authgate.stores.sqlite``."""
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def resolve(spec: str) -> tuple[str, tuple[str, ...]]:
    """A module (``src/authgate/tokens.py``, ``authgate.tokens``, ``tokens``,
    ``stores/sqlite``), optionally ``::Class.method`` or ``::function``."""
    where, _, function = spec.partition("::")
    name = where.removesuffix(".py").removeprefix("src/").replace(".", "/")
    path = f"src/authgate/{name.removeprefix('authgate/')}.py"
    if path not in TARGETS:
        raise SystemExit(f"mutation: {spec!r} is not a module mutated: {', '.join(TARGETS)}")
    return path, (function,) if function else TARGETS[path]


def globs_for(targets: dict[str, tuple[str, ...]]) -> list[str]:
    """Patterns of mutmut's mutant names, such as
    ``authgate.flows.lockout.xǁLockoutPolicyǁreserve__mutmut_3``."""
    out = []
    for path, functions in targets.items():
        module = module_name(path)
        for function in functions:
            if function == "*":
                out.append(f"{module}.x*__mutmut_*")
                continue
            cls, _, name = function.rpartition(".")
            key = f"{module}.xǁ{cls}ǁ{name}" if cls else f"{module}.x_{name}"
            out.append(f"{key}__mutmut_*")
    return out


# -- mutants/ -----------------------------------------------------------------------------


def selection(whole_suite: bool) -> str:
    """``AUTHGATE_MUTATION_TESTS`` for scripts/mutation_conftest.py: module -> test files."""
    if whole_suite:
        return "{}"
    return json.dumps({module_name(p): [*TESTS[p], *GUARDS] for p in TARGETS}, sort_keys=True)


def inputs_digest(chosen: str) -> str:
    """Everything the test-to-function map and the verdicts depend on."""
    digest = hashlib.sha256(chosen.encode())
    files = [ROOT / "pyproject.toml", PLUGIN]
    for top in ("src", "tests", "examples"):
        files += sorted((ROOT / top).rglob("*.py"))
    for file in files:
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def prepare(fresh: bool, chosen: str) -> bool:
    """Set up mutants/; True when a source, a test or the configuration changed since
    the last run (mutmut then rebuilds its map of which tests reach which function, and
    the mutants that survived are tested again)."""
    if fresh and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    MUTANTS.mkdir(exist_ok=True)
    for copied in ("tests", "examples"):  # recopied by mutmut; this drops deleted files
        shutil.rmtree(MUTANTS / copied, ignore_errors=True)
    shutil.copy(PLUGIN, MUTANTS / "conftest.py")
    digest = inputs_digest(chosen)
    if INPUTS_STAMP.exists() and INPUTS_STAMP.read_text() == digest:
        return False
    (MUTANTS / "mutmut-stats.json").unlink(missing_ok=True)
    INPUTS_STAMP.write_text(digest)
    return True


def generate(jobs: int) -> None:
    """mutmut's own first step: (re)write the mutants of every module changed since."""
    from mutmut.__main__ import create_mutants
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir

    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        copy_src_dir()
        copy_also_copy_files()
        create_mutants(jobs)


# -- judging a mutant without running it ----------------------------------------------------


def fingerprint(diff: str) -> str:
    """The mutation itself (its removed and added lines), whatever its number."""
    changed = [
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:10]


def _text(node: ast.expr) -> bool:
    """A message: a string, None, or an f-string of plain names."""
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant)
            or (isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name | ast.Attribute))
            for v in node.values
        )
    return False


class _DropMessages(ast.NodeTransformer):
    def visit_Raise(self, node: ast.Raise) -> ast.Raise:
        self.generic_visit(node)
        if isinstance(node.exc, ast.Call):
            node.exc.args = [a for a in node.exc.args if not _text(a)]
            node.exc.keywords = [k for k in node.exc.keywords if not _text(k.value)]
        return node


def wording_only(original: str, mutant: str) -> bool:
    """The mutant changes nothing but the text of an exception being raised: its words,
    not which exception, nor when."""
    try:
        trees = [_DropMessages().visit(ast.parse(code)) for code in (original, mutant)]
    except SyntaxError:
        return False
    return ast.dump(trees[0]) == ast.dump(trees[1])


@dataclass
class Entry:
    """A line of the equivalence list."""

    name: str
    fingerprint: str
    reason: str
    line: int
    used: bool = False

    @property
    def function(self) -> str:
        return self.name.partition("__mutmut_")[0]


def read_equivalent() -> list[Entry]:
    entries: list[Entry] = []
    if not EQUIVALENT.exists():
        return entries
    for number, raw in enumerate(EQUIVALENT.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or "__mutmut_" not in parts[0]:
            raise SystemExit(f"{EQUIVALENT}:{number}: want '<mutant> <fingerprint> <reason>'")
        entries.append(Entry(parts[0], parts[1], parts[2], number))
    return entries


@dataclass
class Mutant:
    path: str
    name: str
    status: str
    diff: str
    fingerprint: str
    wording: bool
    equivalent: Entry | None

    @property
    def decided(self) -> bool:
        return self.status != "not checked"


def load(targets: dict[str, tuple[str, ...]], recheck: bool) -> list[Mutant]:
    """The mutants asked for, with mutmut's verdicts so far; `recheck` forgets every
    verdict but "killed" first."""
    import libcst as cst
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    globs = globs_for(targets)
    entries = read_equivalent()
    mutants = []
    for path in targets:
        data = SourceFileMutationData(path=path)
        data.load()
        if recheck:
            for name, code in data.exit_code_by_key.items():
                if status_by_exit_code[code] not in KILLED:
                    data.exit_code_by_key[name] = None
            data.save()
        for name, code in sorted(data.exit_code_by_key.items(), key=_natural):
            if not any(fnmatch.fnmatchcase(name, g) for g in globs):
                continue
            status = status_by_exit_code[code]
            function = name.partition("__mutmut_")[0]
            if status in KILLED and not any(e.function == function for e in entries):
                mutants.append(Mutant(path, name, status, "", "", False, None))
                continue  # nothing more to know
            original, mutated = (cst.Module([f]).code.strip() for f in read_functions(name, path))
            diff = "\n".join(
                difflib.unified_diff(
                    original.split("\n"), mutated.split("\n"), path, path, lineterm=""
                )
            )
            mark = fingerprint(diff)
            entry = next(
                (e for e in entries if (e.function, e.fingerprint) == (function, mark)), None
            )
            wording = wording_only(original, mutated)
            mutants.append(Mutant(path, name, status, diff, mark, wording, entry))
    for entry in entries:
        if entry.function.rpartition(".")[0] in {module_name(p) for p in targets}:
            entry.used = any(m.equivalent is entry for m in mutants)
            if not entry.used:
                print(
                    f"note: {EQUIVALENT.relative_to(ROOT)}:{entry.line} ({entry.name}) matches "
                    "no mutant any more (the code changed): judge the new mutants, drop it"
                )
    return mutants


def read_functions(name: str, path: str) -> tuple[Any, Any]:
    """The function a mutant was made from, and the mutant (libcst nodes), the way
    ``mutmut show`` reads them."""
    from mutmut.mutation.diff_apply import (
        read_functions_from_index,
        read_mutant_function,
        read_mutants_module,
        read_original_function,
    )

    functions = read_functions_from_index(name, path)
    if functions is not None:
        return functions
    module = read_mutants_module(path)
    return read_original_function(module, name), read_mutant_function(module, name)


def _natural(item: tuple[str, int | None]) -> tuple[str, int]:
    base, _, number = item[0].rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


# -- running ------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_url() -> Iterator[str | None]:
    """One Redis for the whole run (each mutant's pytest would otherwise start its own)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from authgate.testing import find_redis_server, redis_server

    if find_redis_server() is None:
        yield None
        return
    with redis_server() as url:
        yield url


def run_mutmut(names: list[str], jobs: int, env: dict[str, str]) -> int:
    """Test the mutants named: mutmut's whole output to mutants/mutmut-run.log, its
    milestones (and a progress line every 30 s) to stdout."""
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut if mutmut.exists() else "mutmut"), "run", "--max-children", str(jobs)]
    with LOG.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own venv's mutmut, our arguments
            [*command, *names], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        pending, last, shown = "", "", time.monotonic()
        quiet = False  # mutmut lists every mutant it was given at the end: left to the log
        while chunk := os.read(proc.stdout.fileno(), 4096):
            text = chunk.decode(errors="replace")
            log.write(text)
            pending += text
            *lines, pending = re.split(r"[\r\n]", pending)
            for line in lines:
                quiet = quiet or line.startswith("Mutant results")
                if quiet or not line.strip() or line.strip().startswith("also copying"):
                    continue
                if line[0] in SPINNER:
                    last = line[1:].strip()
                    if time.monotonic() - shown > 30:
                        print(f"    {last}", flush=True)
                        shown = time.monotonic()
                else:
                    print(f"    {line.strip()}", flush=True)
    return proc.wait()


# -- the summary --------------------------------------------------------------------------

COLUMNS = ("mutants", "killed", "timeout", "equiv.", "wording", "surviving", "not run")


def _count(mutants: list[Mutant]) -> tuple[int, ...]:
    killed = sum(m.status in KILLED for m in mutants)
    timeout = sum(m.status == "timeout" for m in mutants)
    rest = [m for m in mutants if m.status not in KILLED and m.status != "timeout"]
    equivalent = sum(m.equivalent is not None for m in rest)
    wording = sum(m.equivalent is None and m.wording for m in rest)
    left = [m for m in rest if m.equivalent is None and not m.wording]
    surviving = sum(m.decided for m in left)
    return len(mutants), killed, timeout, equivalent, wording, surviving, len(left) - surviving


def surviving(mutants: list[Mutant]) -> list[Mutant]:
    return [
        m
        for m in mutants
        if m.decided
        and m.status not in KILLED
        and m.status != "timeout"
        and m.equivalent is None
        and not m.wording
    ]


def report(mutants: list[Mutant], show_wording: bool) -> int:
    paths = sorted({m.path for m in mutants}, key=list(TARGETS).index)
    print()
    print(f"{'module':30}" + "".join(f"{c:>10}" for c in COLUMNS))
    for path in paths:
        counts = _count([m for m in mutants if m.path == path])
        print(f"{path:30}" + "".join(f"{n:10}" for n in counts))
    if len(paths) > 1:
        print(f"{'total':30}" + "".join(f"{n:10}" for n in _count(mutants)))
    print(
        "timeout: the tests hung, counted as killed; wording: changes only the words of an "
        "error, not tested (--messages tests them)"
    )
    for m in surviving(mutants) + ([m for m in mutants if m.wording] if show_wording else []):
        print(f"\n--- {m.status}{' (wording)' if m.wording else ''}: {m.name}")
        print("\n".join(m.diff.splitlines()[2:]))
        print(f"    equivalent? {m.name} {m.fingerprint} <why>")
    for m in mutants:
        if m.equivalent is not None and m.status in KILLED:
            print(
                f"\nnote: {m.name} is listed as equivalent "
                f"({EQUIVALENT.relative_to(ROOT)}:{m.equivalent.line}) but a test kills it"
            )
    pending = _count(mutants)[-1]
    if pending:
        print(f"\n{pending} mutants not run yet (interrupted?): run the same command again")
    return 1 if surviving(mutants) else 0


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "modules",
        nargs="*",
        help="modules to mutate, e.g. src/authgate/flows/lockout.py or tokens (default: all), "
        "optionally narrowed to one function: 'tokens::KeyRing.verify'",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="mutants tested at once (default: half the cores)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete mutants/ first: generate and test everything again",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also test the mutants listed as equivalent and the wording ones",
    )
    parser.add_argument(
        "--messages", action="store_true", help="show the wording mutants too (and test them)"
    )
    parser.add_argument(
        "--whole-suite",
        action="store_true",
        help="judge each mutant by every test reaching it, not by its module's own tests "
        "(TESTS in this script): many hours for the whole core",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: summarize the results in mutants/",
    )
    args = parser.parse_args(argv)

    targets: dict[str, tuple[str, ...]] = {}
    for spec in args.modules or list(TARGETS):
        path, functions = resolve(spec)
        targets[path] = (*targets.get(path, ()), *functions)
    os.chdir(ROOT)  # mutmut works on paths relative to the project

    if args.report:
        return report(load(targets, recheck=False), args.messages)

    started = time.monotonic()
    chosen = selection(args.whole_suite)
    recheck = prepare(args.fresh, chosen)
    print(f"mutation: {', '.join(targets)}", flush=True)
    generate(args.jobs)
    mutants = load(targets, recheck)
    todo = [
        m.name
        for m in mutants
        if not m.decided
        and (args.all or m.equivalent is None)
        and (args.all or args.messages or not m.wording)
    ]
    print(
        f"    {len(mutants)} mutants, {len(todo)} to test, {args.jobs} at a time "
        f"(log: {LOG.relative_to(ROOT)})",
        flush=True,
    )
    if todo:
        with redis_url() as url:
            env = {**os.environ, "AUTHGATE_MUTATION_TESTS": chosen}
            env.update({"REDIS_URL": url} if url else {})
            code = run_mutmut(todo, args.jobs, env)
        if code != 0:
            print(f"mutation: mutmut failed (exit {code}); the end of {LOG}:", file=sys.stderr)
            tail = re.split(r"[\r\n]", LOG.read_text(errors="replace"))[-40:]
            print("\n".join(line for line in tail if line.strip()), file=sys.stderr)
            print("mutation: the same command resumes the run", file=sys.stderr)
            return 2
        mutants = load(targets, recheck=False)
    result = report(mutants, args.messages)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"\nmutation: done in {minutes}m{seconds:02}s")
    return result


if __name__ == "__main__":
    sys.exit(main())
