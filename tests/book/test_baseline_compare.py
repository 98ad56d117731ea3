"""The baseline comparison itself must catch drift (a check that cannot fail protects nothing)."""
from __future__ import annotations

from tests.book.test_notebooks import compare

BASELINE = {"tolerance": {"abs": 0.01, "rel": 0.0}, "per_key_tolerance": {"loose": {"abs": 0.5}},
            "numbers": {"a": 1.0, "loose": 1.0, "nested": {"b": [1, 2]}, "flag": True}}


def test_identical_numbers_pass():
    assert compare(BASELINE["numbers"], BASELINE["numbers"], BASELINE) == []


def test_drift_missing_and_new_keys_are_reported():
    actual = {"a": 1.02, "loose": 1.4, "nested": {"b": [1, 3]}, "flag": False, "extra": 0}
    problems = "\n".join(compare(actual, BASELINE["numbers"], BASELINE))
    assert "a: 1.02 differs" in problems
    assert "loose" not in problems.replace("loose: 1.4", "")  # within its per-key tolerance
    assert "nested.b[1]" in problems and "flag" in problems and "extra: not in the baseline" in problems
    assert "missing" in "\n".join(compare({}, {"a": 1.0}, BASELINE))


def test_non_finite_numbers_fail():
    assert compare({"a": float("nan")}, {"a": 1.0}, BASELINE)
