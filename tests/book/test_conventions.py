"""Mechanical checks of the course conventions (book/conventions.md) over every executable page in ``_toc.yml``.

Each page opens with its objectives, ends with exercises whose solutions are hidden, cites no file outside the
repository (``papers.md``) and keeps code lines short enough not to be clipped at a 1280 px window.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pages import REPO, executable_pages

MAX_CODE_LINE = 88
OBJECTIVES_WITHIN_LINES = 40  # after the front matter
OBJECTIVES = re.compile(r"^#{2,3} What you will learn\s*$", re.MULTILINE)
EXERCISES = re.compile(r"^## Exercises\s*$", re.MULTILINE)
HIDDEN_SOLUTION = re.compile(r"^\s*`{3,}\{(dropdown|solution)[^}]*\}", re.MULTILINE)
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def _param(page: Path):
    return pytest.param(page, id=page.stem)


PAGES = [_param(page) for page in executable_pages() if page.suffix == ".md"]


def _body(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    if text.startswith("---"):
        text = text[text.index("\n---", 3) + 4:]
    return text


def _code_lines(text: str) -> list[str]:
    """The code of every cell, without its options (``:tags:`` lines or the ``---`` YAML header of a caption)."""
    lines = []
    for cell in CODE_CELL.findall(text):
        cell_lines = cell.splitlines()
        if cell_lines and cell_lines[0] == "---":
            cell_lines = cell_lines[cell_lines.index("---", 1) + 1:]
        lines += [line for line in cell_lines if not line.startswith(":")]
    return lines


@pytest.mark.parametrize("page", PAGES)
def test_page_follows_the_course_conventions(page: Path) -> None:
    text = _body(page)
    name = page.relative_to(REPO)
    head = "\n".join(text.splitlines()[:OBJECTIVES_WITHIN_LINES])
    assert OBJECTIVES.search(head), (f"{name} has no '## What you will learn' section in its first "
                                     f"{OBJECTIVES_WITHIN_LINES} lines. Open the page with 3-5 objectives.")
    exercises = EXERCISES.search(text)
    assert exercises, f"{name} has no '## Exercises' section. End the page with 3-6 exercises."
    solutions = HIDDEN_SOLUTION.findall(text[exercises.end():])
    assert len(solutions) >= 3, (f"{name} has {len(solutions)} hidden solutions after its exercises. Give each "
                                 "exercise a {dropdown} or {solution} block.")
    assert "papers.md" not in text, f"{name} mentions papers.md, which is not in the repository. Cite the papers."
    long_lines = [line for line in _code_lines(text) if len(line) > MAX_CODE_LINE]
    assert not long_lines, (f"{name} has {len(long_lines)} code lines over {MAX_CODE_LINE} characters, e.g. "
                            f"{long_lines[0]!r}. Wrap them.")


def test_the_conventions_and_notation_pages_are_in_the_book() -> None:
    toc = (REPO / "_toc.yml").read_text()
    for page in ("book/conventions", "book/notation", "book/losses"):
        assert page in toc, f"_toc.yml does not list {page}. Add it so the course conventions are built."


RECORDED_MEDIUM = sorted((REPO / "results").glob("*/synthetic-medium.json"))


@pytest.mark.parametrize("path", RECORDED_MEDIUM, ids=[p.parent.name for p in RECORDED_MEDIUM])
def test_a_recorded_medium_run_matches_its_profile_and_page(path: Path) -> None:
    """A reproduction page states its spread over seeds from ``results/<paper>/synthetic-medium.json``: the record
    must come from the experiment's current medium profile (its seeds and methods) and be the file the page reads."""
    import json

    from dml.reproduce import load_experiment

    paper = path.parent.name
    record = json.loads(path.read_text(encoding="utf-8"))
    experiment = load_experiment(REPO / "notebooks" / paper)
    seeds = list(experiment.profile("medium").seeds)
    name = path.relative_to(REPO)
    assert record["profile"] == "medium" and record["seeds"] == seeds, (
        f"{name} was recorded with profile {record['profile']!r}, seeds {record['seeds']}, but the medium profile of "
        f"notebooks/{paper}/experiment.yaml has seeds {seeds}. Record it again with the command on the page."
    )
    per_seed = record["numbers"]["per_seed"]
    assert set(per_seed) == set(experiment.methods), f"{name} has methods {sorted(per_seed)}, not the experiment's."
    assert all(len(values) == len(seeds) for metrics in per_seed.values() for values in metrics.values()), (
        f"{name} lacks a seed's value for some method; record it again with the command on the page."
    )
    page = (REPO / "notebooks" / f"reproduce_{paper}.md").read_text(encoding="utf-8")
    assert f"results/{paper}/synthetic-medium.json" in page, f"notebooks/reproduce_{paper}.md does not read {name}."
