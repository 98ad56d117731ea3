"""Static checks of the book: Colab twins in sync, parameters cells, Colab install cell, citations, no placeholders."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.pages import REPO, colab_twin, executable_pages, toc_pages

PAGES = executable_pages()
IDS = [str(p.relative_to(REPO)) for p in PAGES]


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in notebook.cells]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_colab_twin_exists_without_outputs_and_matches(page: Path) -> None:
    twin = page.with_suffix(".ipynb")
    assert twin.is_file(), f"{twin.relative_to(REPO)} is missing; run `make twins` (jupytext --sync) and commit it"
    twin_nb = nbformat.read(twin, as_version=4)
    with_outputs = [
        i for i, c in enumerate(twin_nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not with_outputs, f"{twin.name} has outputs in cells {with_outputs}; the twin must be output-free"
    assert _cells(colab_twin(page)) == _cells(twin_nb), (
        f"{page.name} and {twin.name} have drifted apart; run `make twins` and commit both")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_parameters_cell_and_colab_install_cell(page: Path) -> None:
    import jupytext

    code = [c for c in jupytext.read(page).cells if c.cell_type == "code"]
    repo_url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert "google.colab" in code[0].source and repo_url in code[0].source, (
        f"the first code cell of {page.name} must install the package on Colab from {repo_url} (_config.yml)")
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", ())]
    assert len(tagged) == 1, f"{page.name} needs exactly one cell tagged `parameters`"
    assert re.search(r'^profile\s*=\s*"smoke"', tagged[0].source, re.M), (
        'the parameters cell must set profile = "smoke"')
    assert re.search(r"^results_path\s*=", tagged[0].source, re.M), "the parameters cell must define results_path"
    assert code.index(tagged[0]) == 1, "the parameters cell comes right after the Colab install cell"


def test_every_citation_is_in_the_bibliography() -> None:
    bib = (REPO / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for page in toc_pages():
        for group in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", page.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites {key.strip()!r}, which book/references.bib lacks"


def test_no_placeholder_text_in_pages() -> None:
    pattern = re.compile(r"\b(TODO|TBD|FIXME|coming soon|lorem ipsum|placeholder)\b", re.I)
    for page in list((REPO / "book").glob("*.md")) + list((REPO / "notebooks").glob("*.md")):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{page.name}:{number}: placeholder text: {line.strip()}"
