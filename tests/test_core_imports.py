"""The core imports no web framework, ever."""

from __future__ import annotations

import subprocess
import sys

import authgate

BLOCKER = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"flask", "starlette", "fastapi", "werkzeug"}:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
import authgate, authgate.cli, authgate.stores, authgate.flows, authgate.testing
from authgate.stores import open_store
from authgate.users import User
store = open_store("memory://")
store.create_user(User.new("alice"))
assert store.get_user("ALICE".casefold()) is not None
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {"flask", "starlette"}))
"""


def test_core_imports_and_works_without_flask_or_starlette() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok []"


def test_public_api_is_sorted_and_importable() -> None:
    names = authgate.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert hasattr(authgate, name), name
