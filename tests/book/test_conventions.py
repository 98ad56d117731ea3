"""Mechanical checks of the course conventions (book/conventions.md) over every executable page in ``_toc.yml``.

Each page opens with its objectives, ends with exercises whose solutions are hidden, cites no file outside the
repository (``papers.md``) and keeps code lines short enough not to be clipped at a 1280 px window. Its first code
cell is the install cell written from the one repository URL of ``_config.yml``; the executed outputs show no machine
paths, warnings or tracebacks; the Colab twins show no MyST markup.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pages import REPO, executable_pages, fresh_notebook, install_cell, repository_url

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


# --- one repository URL, install cells, executed outputs (book/conventions.md, "Clean outputs") ---

MACHINE_PATH = re.compile(r"(?<![\w.])(/tmp/|/var/folders/|/home/|/Users/|/root/|/work/|/content/|[A-Z]:\\\\Users)")
WARNING = re.compile(r"\b\w*Warning\b|^Traceback \(most recent call last\)", re.MULTILINE)


@pytest.mark.parametrize("page", [p for p in executable_pages() if p.suffix == ".md"], ids=lambda p: p.stem)
def test_first_cell_installs_from_the_one_repository_url(page: Path) -> None:
    """The first code cell is the install cell written from ``repository.url`` of _config.yml, and no other cell
    installs anything (a fork changes the URL in one place)."""
    import jupytext

    code = [cell for cell in jupytext.read(page).cells if cell.cell_type == "code"]
    expected = install_cell(page)
    assert code[0].source.strip() == expected.strip(), (
        f"the first code cell of {page.relative_to(REPO)} is not the install cell for {repository_url()} "
        "(_config.yml). Run `python -m tests.pages --sync-twins`.")
    others = [i for i, cell in enumerate(code[1:], 1) if re.search(r"pip install|git clone", cell.source)]
    assert not others, f"{page.name}: code cells {others} install packages; only the first cell may."


def _output_texts(cell) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            texts.append(output.text)
        elif output.output_type == "error":
            texts.append(f"Traceback (most recent call last)\n{output.ename}: {output.evalue}")
        else:
            data = output.get("data", {})
            texts += [data[kind] for kind in ("text/plain", "text/markdown", "text/html") if kind in data]
    return texts


def output_problems(notebook) -> list[str]:
    """Machine paths, warnings and tracebacks in the outputs of an executed notebook, one line each."""
    problems = []
    for number, cell in enumerate(notebook.cells):
        for text in _output_texts(cell) if cell.cell_type == "code" else []:
            for pattern, what in ((MACHINE_PATH, "a machine path"), (WARNING, "a warning or traceback")):
                match = pattern.search(text)
                if match:
                    context = text[max(0, match.start() - 40): match.end() + 60].replace("\n", " ")
                    problems.append(f"cell {number}: {what}: ...{context}...")
    return problems


def test_output_check_finds_paths_warnings_and_tracebacks() -> None:
    import nbformat

    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="/venv/tqdm/auto.py:21: TqdmWarning: IProgress not found"),
        nbformat.v4.new_output("stream", name="stdout", text="runs in /tmp/dml-sct-4c1yzi33/runs"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[]),
    ]
    clean = nbformat.v4.new_code_cell("y")
    clean.outputs = [nbformat.v4.new_output("stream", name="stdout", text="R@1 0.74 in runs/sct (1/2)")]
    problems = output_problems(nbformat.v4.new_notebook(cells=[cell, clean]))
    assert len(problems) == 3 and all(p.startswith("cell 0") for p in problems), problems


@pytest.mark.parametrize("page", executable_pages(), ids=lambda p: p.stem)
def test_executed_outputs_have_no_paths_warnings_or_tracebacks(page: Path) -> None:
    """The notebooks the regression run executed (``_build/test-notebooks``) when they are fresh. In CI this module
    runs before the pages are executed, so ``test_notebooks.py`` applies the same check right after each run."""
    notebook = fresh_notebook(page)
    if notebook is None:
        pytest.skip(f"no fresh executed notebook of {page.stem}; run tests/book/test_notebooks.py -k {page.stem}")
    problems = output_problems(notebook)
    assert not problems, f"{page.stem} prints {len(problems)} unclean outputs: " + " | ".join(problems[:3])


@pytest.mark.parametrize("page", [p for p in executable_pages() if p.suffix == ".md"], ids=lambda p: p.stem)
def test_twin_markdown_has_no_myst_markup(page: Path) -> None:
    """Colab shows the twin's markdown as it is: no roles, directives or targets may be left in it."""
    import nbformat

    twin = nbformat.read(page.with_suffix(".ipynb"), as_version=4)
    markup = re.compile(r"\{[a-z:-]+\}`|^\s*(`{3,}|:{3,})\{|^\([\w:.-]+\)=\s*$", re.MULTILINE)
    left = [i for i, cell in enumerate(twin.cells) if cell.cell_type == "markdown" and markup.search(cell.source)]
    assert not left, f"{page.with_suffix('.ipynb').name}: MyST markup in markdown cells {left}; run --sync-twins."


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
    readers = [p for p in executable_pages() if f"results/{paper}/synthetic-medium.json" in p.read_text("utf-8")]
    assert readers, f"no page of the book reads {name} (notebooks/reproduce_{paper}.md or a chapter)."
