"""Types seen from the user's side (``tests/typing/``): what must type-check does, and
each mistake marked with its error code in a ``rejected_`` file is reported, on its line, with
that code.  A store operation misspelt in a flow is a type error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent / "typing"
MARK = re.compile(r"#\s*E:\s*([a-z-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def mypy(path: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(
        [
            "--strict",
            "--python-version",
            "3.11",
            "--no-error-summary",
            "--show-error-codes",
            "--no-incremental",
            str(path),
        ]
    )
    return out + err, status


@pytest.mark.parametrize("path", sorted(HERE.glob("accepted_*.py")), ids=lambda p: p.stem)
def test_user_code_type_checks(path: Path) -> None:
    report, status = mypy(path)
    assert status == 0, report


@pytest.mark.parametrize("path", sorted(HERE.glob("rejected_*.py")), ids=lambda p: p.stem)
def test_each_marked_mistake_is_a_type_error(path: Path) -> None:
    expected = {
        (n, m.group(1))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if (m := MARK.search(line))
    }
    report, _ = mypy(path)
    got = {
        (int(m["line"]), m["code"])
        for line in report.splitlines()
        if (m := REPORTED.match(line)) and Path(m["file"]).name == path.name
    }
    assert expected, "no marked mistakes"
    assert expected <= got, report  # each mistake reported with its code
    assert {n for n, _ in got} == {n for n, _ in expected}, report  # and nothing else
