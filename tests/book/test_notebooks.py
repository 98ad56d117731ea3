"""Regression suite: execute every executable page of the book with papermill, profile "smoke".

Each page writes its key numbers to the JSON file named by its ``results_path`` parameter; this test compares them
with ``tests/baselines/<page>.json``. Baselines change only on purpose: ``make baselines`` (which runs this file with
``--update-baselines``) rewrites them, keeping each file's tolerances, and the diff is reviewed before committing.

The executed notebooks are kept in ``_build/test-notebooks/`` (git-ignored), each stamped with the fingerprint of
what produced it, so that ``make book`` reuses a fresh one instead of executing the page again (``tests/pages.py``).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tests.pages import ARTEFACTS, BOOK_PROFILE, REPO, baseline_name, executable_pages, stamp

BASELINES = REPO / "tests" / "baselines"
DEFAULT_TOLERANCE = {"abs": 1e-3, "rel": 1e-3}
# The smoke profile's budget is 90 s per page on 2 cores; this hard stop is looser so a busy CI machine does not
# flake, and the measured time is printed and stored next to the executed notebook.
PAGE_TIMEOUT_S = 240

PAGES = executable_pages()


def compare(actual: Any, expected: Any, baseline: dict[str, Any], where: str = "") -> list[str]:
    """Differences between ``actual`` and ``expected``: numbers within abs + rel·|expected|, the rest exactly.

    The tolerance of a number comes from the baseline file: ``tolerance``, overridden per top-level key by
    ``per_key_tolerance``.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, got {actual!r}"]
        problems = []
        for key in sorted(set(expected) | set(actual)):
            path = f"{where}.{key}" if where else str(key)
            if key not in actual:
                problems.append(f"{path}: missing from the page's results")
            elif key not in expected:
                problems.append(f"{path}: not in the baseline (new number? run `make baselines`)")
            else:
                problems += compare(actual[key], expected[key], baseline, path)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected a list of {len(expected)}, got {actual!r}"]
        return [p for i, (a, e) in enumerate(zip(actual, expected)) for p in compare(a, e, baseline, f"{where}[{i}]")]
    if isinstance(expected, (bool, str)) or expected is None:
        return [] if actual == expected else [f"{where}: {actual!r} != baseline {expected!r}"]
    if isinstance(expected, (int, float)):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool) or not math.isfinite(actual):
            return [f"{where}: expected a finite number, got {actual!r}"]
        tolerance = tolerance_for(baseline, where.split(".")[0].split("[")[0])
        bound = tolerance["abs"] + tolerance["rel"] * abs(expected)
        if abs(actual - expected) > bound:
            return [f"{where}: {actual!r} differs from baseline {expected!r} by {abs(actual - expected):.3g} "
                    f"(tolerance {bound:.3g})"]
        return []
    return [f"{where}: unsupported baseline value {expected!r}"]


def tolerance_for(baseline: dict[str, Any], key: str) -> dict[str, float]:
    tol = dict(DEFAULT_TOLERANCE)
    tol.update(baseline.get("tolerance", {}))
    tol.update(baseline.get("per_key_tolerance", {}).get(key, {}))
    return tol


def test_pages_are_found() -> None:
    assert PAGES, "_toc.yml lists no executable page"
    names = [baseline_name(p) for p in PAGES]
    assert len(names) == len(set(names)), f"two pages share a baseline name: {names}"


@pytest.mark.notebook
@pytest.mark.timeout(PAGE_TIMEOUT_S)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_page_smoke_profile(page: Path, request: pytest.FixtureRequest) -> None:
    import jupytext
    import nbformat
    import papermill

    from tests.book.test_conventions import output_problems

    name = baseline_name(page)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    results_path = ARTEFACTS / f"{name}.json"
    results_path.unlink(missing_ok=True)
    notebook = jupytext.read(page)
    start = time.perf_counter()
    papermill.execute_notebook(
        notebook,
        str(ARTEFACTS / f"{name}.ipynb"),
        parameters={"profile": BOOK_PROFILE, "results_path": str(results_path)},
        kernel_name="python3",
        cwd=str(page.parent),
        progress_bar=False,
        execution_timeout=PAGE_TIMEOUT_S,
    )
    seconds = time.perf_counter() - start
    print(f"{page.relative_to(REPO)}: executed in {seconds:.1f} s")
    stamp(ARTEFACTS / f"{name}.ipynb", page, BOOK_PROFILE, seconds)
    assert results_path.is_file(), f"{page} did not write its results to results_path (call dml.notebook.save_results)"
    record = json.loads(results_path.read_text())
    assert record["profile"] == "smoke"
    numbers = record["numbers"]

    baseline_path = BASELINES / f"{name}.json"
    if request.config.getoption("--update-baselines"):
        old = json.loads(baseline_path.read_text()) if baseline_path.exists() else {}
        new = {"page": str(page.relative_to(REPO)), "profile": "smoke",
               "tolerance": old.get("tolerance", DEFAULT_TOLERANCE),
               "per_key_tolerance": old.get("per_key_tolerance", {}),
               "seconds_when_recorded": round(seconds, 1), "numbers": numbers}
        baseline_path.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
        return
    assert baseline_path.is_file(), (f"no baseline {baseline_path.relative_to(REPO)}; create it on purpose with "
                                     "`make baselines` and commit it")
    baseline = json.loads(baseline_path.read_text())
    problems = compare(numbers, baseline["numbers"], baseline)
    assert not problems, f"{page.relative_to(REPO)} drifted from its baseline:\n  " + "\n  ".join(problems)
    unclean = output_problems(nbformat.read(ARTEFACTS / f"{name}.ipynb", as_version=4))
    assert not unclean, f"{page.relative_to(REPO)} prints {len(unclean)} unclean outputs: " + " | ".join(unclean[:3])
