"""Documents from outside the process: JSON parsed within bounds, and the files that
configure authgate (policies, static users, fixtures) read with errors naming the file.

The standard library's JSON parser recurses once per nesting level, so ``'[' * 1000`` raises
`RecursionError`, an error nobody catches, and a few hundred levels pass the parser only
to exhaust the stack of whatever walks the result.  Everything authgate reads from a
request, a token or a file goes through `loads`: too deep is a `ValueError` like any
other malformed JSON, raised before the parser runs.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_DEPTH = 32
"""Nesting allowed in a document: authgate's own (claims, bodies, policy files) use 4."""

# A string (skipped whole, escapes included) or a bracket.
_LEXEMES = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def loads(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing documents nested deeper than `max_depth` (ValueError)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") > max_depth and _depth(data) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except RecursionError as err:  # unreachable below the bound; kept as the last word
        raise ValueError("JSON nested too deeply") from err


def _depth(data: bytes) -> int:
    deepest = level = 0
    for match in _LEXEMES.finditer(data):
        char = match.group()
        if char in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        elif char in (b"]", b"}"):
            level -= 1
    return deepest


def read_file(path: str | Path, what: str) -> Mapping[str, Any]:
    """The mapping a ``.toml``, ``.yaml`` / ``.yml`` or ``.json`` file holds; every
    failure (missing file, syntax, nesting, not a mapping) a `ConfigError` naming the
    file and saying what it is (`what`, e.g. "the role policy")."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif file.suffix in (".yaml", ".yml"):
            data = _yaml(text)
        elif file.suffix == ".json":
            data = loads(text)
        else:
            raise ConfigError(
                f"{what} {path}: unknown file type {file.suffix!r}: use .toml, .yaml or .json"
            )
    except (OSError, ValueError, RecursionError) as err:
        raise ConfigError(f"cannot read {what} {path}: {err}") from err
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} {path} must hold a table/mapping at the top level")
    return data


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError as err:
        raise ConfigError("YAML files need PyYAML: pip install pyyaml") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(str(err).replace("\n", " ")) from err
