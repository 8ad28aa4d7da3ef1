"""mkdocs hook: put benchmarks/RESULTS.md (what ``python benchmarks/run.py`` writes at
every run) into the Performance page, where the page says ``<!-- RESULTS.md -->``.

RESULTS.md links to the docs from its own folder (``../docs/redis.md``); on the site
those pages sit beside the Performance page, so the links lose that prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
MARKER = "<!-- RESULTS.md -->"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """The page's Markdown, with RESULTS.md (less its title) where the marker stands."""
    if MARKER not in markdown:
        return markdown
    results = RESULTS.read_text().split("\n", 1)[1]
    results = results.replace("](../docs/", "](").replace("[../docs/", "[")
    return markdown.replace(MARKER, results)
