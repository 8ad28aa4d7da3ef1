"""Every test the feature table names exists (so a green run backs every row)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_feature_table_names_real_tests() -> None:
    table = (ROOT / "docs" / "features.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", table)
    assert len(named) > 30
    for path, test in named:
        source = (ROOT / path).read_text()
        if test:
            assert f"def {test}(" in source, f"{path}::{test} is not a test"
    # bare names listed after a full reference live in the same file
    for path, rest in re.findall(r"`(tests/[\w/]+\.py)::\w+`, `(\w+)`", table):
        assert f"def {rest}(" in (ROOT / path).read_text(), f"{path}::{rest} is not a test"


def test_every_seed_has_a_coming_from_page_with_a_tested_example() -> None:
    examples = (ROOT / "tests" / "test_examples.py").read_text()
    for seed in ("haystack", "bluesky", "amsdal", "plantdb", "iggy"):
        page = (ROOT / "docs" / f"coming-from-{seed}.md").read_text()
        assert f"examples/from_{seed}.py" in page
        assert f"from_{seed}.py" in examples


def test_the_architecture_pages_example_runs() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/architecture.md", "exec"), {})  # noqa: S102 - our own docs
