"""Mutation testing of authgate's security core, in one command (docs/mutation.md).

    scripts/mutation                                    # every security module
    scripts/mutation src/authgate/lockout.py tokens     # a subset
    scripts/mutation 'tokens::KeyRing.verify'           # one function
    scripts/mutation --report lockout                   # re-read the last results

Runs mutmut (configured in pyproject.toml's ``[tool.mutmut]``) over the chosen modules and
prints, per module: the mutants generated, killed, equivalent (listed with a reason in
tests/mutation/equivalent.txt) and surviving (neither; "wording": those of them that only
change the words of an error message), then the diff of every surviving mutant but the
wording ones (``--messages`` shows those too) and its entry for the equivalence list.
Exits 1 if a mutant survives that is not a wording one, 2 if the run itself failed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
TARGETS: dict[str, tuple[str, ...]] = {
    "src/authgate/tokens.py": ("*",),
    "src/authgate/lockout.py": ("*",),
    "src/authgate/sessions.py": ("*",),
    "src/authgate/apikeys.py": ("*",),
    "src/authgate/scram.py": ("*",),
    "src/authgate/permissions.py": ("*",),
    "src/authgate/api.py": ("*",),
    "src/authgate/stores/sqlite.py": tuple(f"SQLiteStore.{f}" for f in ("_write", *ATOMIC)),
    "src/authgate/stores/memory.py": tuple(f"MemoryStore.{f}" for f in ATOMIC),
    "src/authgate/stores/redis.py": tuple(f"_Logic.{f}" for f in ATOMIC),
}

KILLED = {"killed", "caught by type check"}
TIMEOUT = {"timeout"}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def module_name(path: str) -> str:
    """``src/authgate/stores/sqlite.py`` -> ``authgate.stores.sqlite``."""
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def function_key(module: str, function: str) -> str:
    """mutmut's name for a function: ``authgate.lockout.xǁLockoutPolicyǁreserve``."""
    cls, _, name = function.rpartition(".")
    return f"{module}.xǁ{cls}ǁ{name}" if cls else f"{module}.x_{name}"


def resolve(spec: str) -> tuple[str, tuple[str, ...]]:
    """A module (``src/authgate/tokens.py``, ``authgate.tokens``, ``tokens``,
    ``stores/sqlite``), optionally ``::Class.method`` or ``::function``."""
    where, _, function = spec.partition("::")
    name = where.removesuffix(".py").removeprefix("src/").replace(".", "/")
    name = name.removeprefix("authgate/")
    path = f"src/authgate/{name}.py"
    if path not in TARGETS:
        known = ", ".join(TARGETS)
        raise SystemExit(f"mutation: {spec!r} is not one of the modules mutated: {known}")
    return path, (function,) if function else TARGETS[path]


def globs_for(targets: dict[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """The names to hand mutmut, and the exact patterns of the mutants asked for.

    mutmut matches the names it is given against its mutants (``...reserve__mutmut_3``)
    and, to pick the tests of its clean run, against functions (``...reserve``); a name
    matching no function makes that clean run the whole suite.  ``...reserve*`` matches
    both (and any function whose name starts the same: the summary counts only the exact
    ones)."""
    run, exact = [], []
    for path, functions in targets.items():
        module = module_name(path)
        for function in functions:
            key = f"{module}." if function == "*" else function_key(module, function)
            run.append(f"{key}*")
            exact.append(f"{key}*" if function == "*" else f"{key}__mutmut_*")
    return run, exact


def inputs_digest() -> str:
    """Everything the test-to-function map depends on."""
    digest = hashlib.sha256()
    files = [ROOT / "pyproject.toml", PLUGIN]
    for top in ("src", "tests", "examples"):
        files += sorted((ROOT / top).rglob("*.py"))
    for file in files:
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def prepare(fresh: bool) -> None:
    """Set up mutants/: mutmut regenerates a module's mutants when the module changes,
    but its map of which tests cover which function is only rebuilt from scratch here,
    when any source, test or the configuration changed since it was made."""
    if fresh and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    MUTANTS.mkdir(exist_ok=True)
    for copied in ("tests", "examples"):  # recopied by mutmut; this drops deleted files
        shutil.rmtree(MUTANTS / copied, ignore_errors=True)
    shutil.copy(PLUGIN, MUTANTS / "conftest.py")
    digest = inputs_digest()
    if not INPUTS_STAMP.exists() or INPUTS_STAMP.read_text() != digest:
        (MUTANTS / "mutmut-stats.json").unlink(missing_ok=True)
        INPUTS_STAMP.write_text(digest)


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


def run_mutmut(globs: list[str], jobs: int, env: dict[str, str]) -> int:
    """Run mutmut, its whole output to mutants/mutmut-run.log, its milestones (and a
    progress line every 30 s) to stdout."""
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut if mutmut.exists() else "mutmut"), "run", "--max-children", str(jobs)]
    with LOG.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own venv's mutmut, our arguments
            [*command, *globs], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
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
                if not line.strip() or quiet or line.strip().startswith("also copying"):
                    continue
                if line[0] in SPINNER:
                    last = line[1:].strip()
                    if time.monotonic() - shown > 30:
                        print(f"    {last}", flush=True)
                        shown = time.monotonic()
                else:
                    print(f"    {line.strip()}", flush=True)
        code = proc.wait()
    if last:
        print(f"    {last}")
    return code


def fingerprint(diff: str) -> str:
    """The mutation itself (its removed and added lines), whatever its number."""
    changed = [
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:10]


@dataclass
class Entry:
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
class Survivor:
    name: str
    status: str
    fingerprint: str
    diff: str
    message_only: bool


@dataclass
class Tally:
    generated: int = 0
    killed: int = 0
    timeout: int = 0
    equivalent: int = 0
    surviving: list[Survivor] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.generated += other.generated
        self.killed += other.killed
        self.timeout += other.timeout
        self.equivalent += other.equivalent
        self.surviving += other.surviving

    def row(self, label: str) -> str:
        messages = sum(s.message_only for s in self.surviving)
        return (
            f"{label:32} {self.generated:7} {self.killed:7} {self.timeout:7} "
            f"{self.equivalent:7} {len(self.surviving):9} {messages:9}"
        )


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


def message_only(original: str, mutant: str) -> bool:
    """The mutant changes nothing but the text of an exception being raised (its words,
    not which exception, nor when): tests check the error, not its wording."""
    try:
        trees = [_DropMessages().visit(ast.parse(code)) for code in (original, mutant)]
    except SyntaxError:
        return False
    return ast.dump(trees[0]) == ast.dump(trees[1])


def collect(targets: dict[str, tuple[str, ...]], globs: list[str]) -> dict[str, Tally]:
    """The results mutmut left in mutants/, per module, for the mutants asked for."""
    import fnmatch

    import libcst as cst
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant, read_functions_from_index
    from mutmut.stats import status_by_exit_code

    entries = read_equivalent()
    tallies: dict[str, Tally] = {}
    os.chdir(ROOT)  # mutmut's readers take paths relative to the project
    for path in targets:
        data = SourceFileMutationData(path=path)
        data.load()
        tally = tallies[path] = Tally()
        for name, exit_code in sorted(data.exit_code_by_key.items(), key=_natural):
            if not any(fnmatch.fnmatchcase(name, g) for g in globs):
                continue
            tally.generated += 1
            status = status_by_exit_code[exit_code]
            if status in KILLED:
                tally.killed += 1
                continue
            if status in TIMEOUT:
                tally.timeout += 1
                continue
            diff = get_diff_for_mutant(name, path=path)
            mark = fingerprint(diff)
            function = name.partition("__mutmut_")[0]
            match = next(
                (e for e in entries if e.function == function and e.fingerprint == mark), None
            )
            if match:
                match.used = True
                tally.equivalent += 1
                continue
            functions = read_functions_from_index(name, path)
            wording = functions is not None and message_only(
                *(cst.Module([f]).code for f in functions)
            )
            tally.surviving.append(Survivor(name, status, mark, diff, wording))

    modules = {module_name(p) for p in targets}
    for entry in entries:
        if not entry.used and entry.function.rpartition(".")[0] in modules:
            print(
                f"note: {EQUIVALENT.relative_to(ROOT)}:{entry.line} ({entry.name}) matches "
                "no surviving mutant any more (killed now, or the code changed): remove it"
            )
    return tallies


def report(tallies: dict[str, Tally], messages: bool) -> int:
    total = Tally()
    print()
    print(
        f"{'module':32} {'mutants':>7} {'killed':>7} {'timeout':>7} {'equiv.':>7} "
        f"{'surviving':>9} {'(wording)':>9}"
    )
    for path, tally in tallies.items():
        print(tally.row(path))
        total.add(tally)
    if len(tallies) > 1:
        print(total.row("total"))
    print(
        "timeout: the mutant made the tests hang, counted as killed; (wording): surviving "
        "mutants that only change the words of an error"
    )
    for survivor in total.surviving:
        if survivor.message_only and not messages:
            continue
        print(f"\n--- {survivor.status}: {survivor.name}")
        print("\n".join(survivor.diff.splitlines()[2:]))
        print(f"    equivalent? {survivor.name} {survivor.fingerprint} <why>")
    hidden = sum(s.message_only for s in total.surviving) if not messages else 0
    if hidden:
        print(f"\n({hidden} mutants that only change an error's wording: see them with --messages)")
    return 1 if any(not s.message_only for s in total.surviving) else 0


def _natural(item: tuple[str, int | None]) -> tuple[str, int]:
    base, _, number = item[0].rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/mutation", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "modules",
        nargs="*",
        help="modules to mutate, e.g. src/authgate/lockout.py or tokens (default: all), "
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
        "--fresh", action="store_true", help="delete mutants/ first and start from nothing"
    )
    parser.add_argument(
        "--messages",
        action="store_true",
        help="also show the surviving mutants that only change an error's wording",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: summarize the results the last run left in mutants/",
    )
    args = parser.parse_args(argv)

    targets: dict[str, tuple[str, ...]] = {}
    for spec in args.modules or list(TARGETS):
        path, functions = resolve(spec)
        targets[path] = (*targets.get(path, ()), *functions)
    run_globs, globs = globs_for(targets)

    if args.report:
        return report(collect(targets, globs), args.messages)

    started = time.monotonic()
    prepare(args.fresh)
    with redis_url() as url:
        env = {**os.environ, **({"REDIS_URL": url} if url else {})}
        print(f"mutation: {', '.join(targets)} ({args.jobs} at a time; log: {LOG})", flush=True)
        code = run_mutmut(run_globs, args.jobs, env)
    if code != 0:
        print(f"mutation: mutmut failed (exit {code}); the end of {LOG}:", file=sys.stderr)
        tail = re.split(r"[\r\n]", LOG.read_text(errors="replace"))[-40:]
        print("\n".join(line for line in tail if line.strip()), file=sys.stderr)
        return 2
    result = report(collect(targets, globs), args.messages)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"\nmutation: done in {minutes}m{seconds:02}s")
    return result


if __name__ == "__main__":
    sys.exit(main())
