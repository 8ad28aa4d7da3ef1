"""pytest plugin for mutation runs: ``scripts/mutation`` copies it to ``mutants/conftest.py``.

mutmut runs the suite inside ``mutants/``, a copy of the project whose ``src/`` holds the
mutated code.  This plugin

* refuses to run unless ``authgate`` is imported from that mutated copy (an editable
  install points at the real ``src/``, and a test that imports the real one cannot kill a
  mutant; mutmut would report it "survived");
* forgets, in each forked child, the thread pool that async code hashes passwords in
  (``authgate.flows.drive.hashing_pool``): mutmut forks one child per mutant from the process
  that ran the suite, the pool's threads do not survive a fork, and a hash queued to it
  would wait forever (every such mutant would show up as a timeout);
* leaves out the tests that drive authgate only through a subprocess (the CLI run as
  ``python -m authgate``, gunicorn and uvicorn, the examples run as scripts): the
  subprocess imports the unmutated tree, so such a test cannot kill a mutant, and it is
  the slowest kind of test there is;
* runs the tests that start several processes on one store only for the mutants of the
  stores and the lock-out, the modules whose cross-process behaviour they judge.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Whole files that only start subprocesses (or read documentation).
SUBPROCESS_FILES = ("test_examples.py", "test_core_imports.py", "test_docs.py", "test_outage.py")

# Single tests that only run authgate in a subprocess (node id prefixes).
SUBPROCESS_TESTS = (
    "tests/test_cli.py::test_create_in_one_process_list_in_another_and_duplicate_refused",
    "tests/test_cli.py::test_store_url_from_environment",
    "tests/test_cli.py::test_user_errors_are_one_line_without_traceback",
    "tests/test_cli.py::test_bootstrap_seeds_an_admin_from_the_environment",
)


def _forget_thread_pools() -> None:
    flows = sys.modules.get("authgate.flows.drive")
    if flows is not None:
        vars(flows)["_pool"] = None  # hashing_pool() makes a new one


os.register_at_fork(after_in_child=_forget_thread_pools)


def pytest_configure(config: pytest.Config) -> None:
    import authgate

    where = Path(authgate.__file__).resolve().parent
    if where != HERE / "src" / "authgate":
        raise pytest.UsageError(
            f"mutation run imports authgate from {where}, not from the mutants "
            f"({HERE / 'src' / 'authgate'}): the tests would not see the mutations"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in SUBPROCESS_FILES:
        return True
    return None


# Tests that start several processes on one store (seconds each): they judge the stores'
# atomic operations and the lock-out across processes, and only those modules' mutants;
# any other module's mutant would pay for them without their being the ones to kill it.
_CROSS_PROCESS = re.compile(r"processes|another_process|by_one_process|in_one_process")
_CROSS_PROCESS_MODULES = ("authgate.stores.", "authgate.flows.lockout")


def _cross_process(item: pytest.Item) -> bool:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant or mutant.startswith(_CROSS_PROCESS_MODULES):
        return False
    return bool(_CROSS_PROCESS.search(getattr(item, "originalname", item.name)))


def _over_http(item: pytest.Item) -> bool:
    """A case of the contract suite that talks to a real gunicorn / uvicorn."""
    if not item.nodeid.startswith("tests/test_contract_apps.py::"):
        return False
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    if any(getattr(value, "transport", None) == "http" for value in callspec.params.values()):
        return True
    return "http" in str(callspec.id).split("-")


def _selected_files() -> frozenset[str] | None:
    """The test files chosen for the module of the mutant under test; None: every file
    (the run that maps tests to functions, or no choice made)."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    match = re.match(r"(.+?)\.x[ǁ_]", mutant) if "__mutmut_" in mutant else None
    chosen = json.loads(os.environ.get("AUTHGATE_MUTATION_TESTS") or "{}")
    if match is None or match.group(1) not in chosen:
        return None
    return frozenset(chosen[match.group(1)])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    files = _selected_files()
    for item in items:
        left_out = item.nodeid.startswith(SUBPROCESS_TESTS) or _over_http(item)
        left_out = left_out or _cross_process(item)
        left_out = left_out or (files is not None and item.path.name not in files)
        (drop if left_out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
