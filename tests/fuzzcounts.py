"""Tried and passed cases of the fuzz families of issue 22 (``tests/test_fuzz_robust.py``,
``tests/test_fuzz_edges.py``).

Each case calls :func:`record` once with its outcome; ``tests/conftest.py`` prints the counts
in pytest's terminal summary and, when ``$NEUROMOSAIC_FUZZ_COUNTS`` names a file, appends them
there as JSON lines (one per family) so they can be quoted.

Example:
    >>> record("example family", True)
    >>> count_lines(only=["example family"])
    ['example family: tried 1, passed 1']
    >>> _ = RESULTS.pop("example family")
"""

from __future__ import annotations

import json
from collections.abc import Iterable

RESULTS: dict[str, list[bool]] = {}


def record(family: str, ok: bool) -> None:
    """Count one case of ``family`` as tried, and as passed when ``ok``."""
    RESULTS.setdefault(family, []).append(ok)


def count_lines(only: Iterable[str] | None = None) -> list[str]:
    """``"<family>: tried N, passed M"`` per family, sorted, then a total when several."""
    families = sorted(RESULTS if only is None else [f for f in only if f in RESULTS])
    lines = [f"{f}: tried {len(RESULTS[f])}, passed {sum(RESULTS[f])}" for f in families]
    if len(families) > 1:
        tried = sum(len(RESULTS[f]) for f in families)
        passed = sum(sum(RESULTS[f]) for f in families)
        lines.append(f"all {len(families)} families: tried {tried}, passed {passed}")
    return lines


def write_json_lines(path: str) -> None:
    """Append ``{"family", "tried", "passed"}`` per family to ``path``."""
    with open(path, "a", encoding="utf-8") as f:
        for family, outcomes in sorted(RESULTS.items()):
            f.write(json.dumps({"family": family, "tried": len(outcomes),
                                "passed": sum(outcomes)}) + "\n")
