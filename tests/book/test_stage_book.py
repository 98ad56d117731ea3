"""The book build reuses the regression run's executed notebooks only when they are fresh (no notebook executed)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from tests.pages import fingerprint, fresh_notebook, stage_book, stamp

PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
---
# A page

```{code-cell} ipython3
:tags: [parameters]
profile = "smoke"
results_path = None
```

```{code-cell} ipython3
print(profile)
```
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "dml").mkdir()
    (tmp_path / "dml" / "__init__.py").write_text("VERSION = 1\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nNo code here.\n")
    (tmp_path / "book" / "page.md").write_text(PAGE)
    (tmp_path / "book" / "page.ipynb").write_text("{}")  # the Colab twin
    (tmp_path / "book" / "references.bib").write_text("")
    (tmp_path / "notebooks" / "x").mkdir(parents=True)
    (tmp_path / "notebooks" / "reproduce_x.md").write_text(PAGE.replace("A page", "Reproduce X"))
    (tmp_path / "notebooks" / "reproduce_x.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "x" / "experiment.yaml").write_text("seeds: [0]\n")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": "book/page"}, {"file": "notebooks/reproduce_x"}]}))
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({
        "exclude_patterns": ["_build/**", "**.ipynb"], "execute": {"execute_notebooks": "force"},
        "bibtex_bibfiles": ["book/references.bib"]}))
    return tmp_path


def executed(repo: Path, page: str, profile: str = "smoke") -> Path:
    """What papermill writes: an injected-parameters cell after the parameters cell, outputs, papermill metadata."""
    artefacts = repo / "_build" / "test-notebooks"
    artefacts.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(metadata={"papermill": {"parameters": {"profile": profile}}})
    parameters = nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell(f'profile = "{profile}"\nresults_path = "/x/_build/test-notebooks/a.json"',
                                         metadata={"tags": ["injected-parameters"], "papermill": {}})
    body = nbformat.v4.new_code_cell("print(profile)", metadata={"papermill": {"duration": 1.0}},
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text=f"{profile}\n")])
    notebook.cells = [parameters, injected, body]
    path = artefacts / f"{Path(page).stem}.ipynb"
    nbformat.write(notebook, path)
    stamp(path, repo / page, profile, 1.0, repo)
    return artefacts


def test_fingerprint_follows_page_package_recipe_and_profile(repo: Path) -> None:
    page = repo / "notebooks" / "reproduce_x.md"
    before = fingerprint(page, "smoke", repo)
    assert fingerprint(page, "smoke", repo) == before
    assert fingerprint(page, "medium", repo) != before
    for changed in (page, repo / "dml" / "__init__.py", repo / "notebooks" / "x" / "experiment.yaml"):
        original = changed.read_text()
        changed.write_text(original + "# edit\n")
        assert fingerprint(page, "smoke", repo) != before, changed
        changed.write_text(original)
    assert fingerprint(page, "smoke", repo) == before
    (repo / "dml" / "new.py").write_text("")
    assert fingerprint(page, "smoke", repo) != before


def test_an_unrelated_recipe_does_not_make_a_page_stale(repo: Path) -> None:
    page = repo / "book" / "page.md"
    before = fingerprint(page, "smoke", repo)
    (repo / "notebooks" / "x" / "experiment.yaml").write_text("seeds: [0, 1]\n")
    assert fingerprint(page, "smoke", repo) == before


def test_fresh_notebook_drops_the_injected_cell_and_keeps_outputs(repo: Path) -> None:
    artefacts = executed(repo, "book/page.md")
    notebook = fresh_notebook(repo / "book" / "page.md", artefacts, repo)
    assert notebook is not None
    assert [c.source for c in notebook.cells] == ['profile = "smoke"', "print(profile)"]
    assert notebook.cells[1].outputs[0]["text"] == "smoke\n"
    assert "papermill" not in notebook.metadata
    assert all("papermill" not in c.metadata for c in notebook.cells)
    assert not any("_build" in cell.source for cell in notebook.cells)  # the artefact paths went with the cell


def test_missing_stale_or_other_profile_notebooks_are_not_reused(repo: Path) -> None:
    page = repo / "book" / "page.md"
    artefacts = repo / "_build" / "test-notebooks"
    assert fresh_notebook(page, artefacts, repo) is None
    executed(repo, "book/page.md", profile="medium")
    assert fresh_notebook(page, artefacts, repo) is None
    executed(repo, "book/page.md")
    assert fresh_notebook(page, artefacts, repo) is not None
    (repo / "dml" / "__init__.py").write_text("VERSION = 2\n")
    assert fresh_notebook(page, artefacts, repo) is None
    unstamped = nbformat.v4.new_notebook()
    nbformat.write(unstamped, artefacts / "page.ipynb")
    assert fresh_notebook(page, artefacts, repo) is None


def test_stage_book_reuses_fresh_pages_and_executes_the_rest(repo: Path) -> None:
    artefacts = executed(repo, "book/page.md")
    stage = repo / "_build" / "stage"
    plan = stage_book(repo, stage, artefacts)
    assert plan == {"book/intro.md": "static", "book/page.md": "reused", "notebooks/reproduce_x.md": "executed"}
    assert (stage / "book" / "page.ipynb").is_file() and not (stage / "book" / "page.md").exists()
    reused = nbformat.read(stage / "book" / "page.ipynb", as_version=4)
    assert len(reused.cells) == 2 and reused.metadata["dml"]["profile"] == "smoke"
    assert (stage / "notebooks" / "reproduce_x.md").read_text() == (repo / "notebooks" / "reproduce_x.md").read_text()
    assert (stage / "notebooks" / "reproduce_x.ipynb").is_file()  # the twin the Colab button finds on disk
    assert (stage / "notebooks" / "x").resolve() == (repo / "notebooks" / "x").resolve()
    assert (stage / "book" / "references.bib").resolve() == (repo / "book" / "references.bib").resolve()
    assert (stage / "_toc.yml").read_text() == (repo / "_toc.yml").read_text()
    config = yaml.safe_load((stage / "_config.yml").read_text())
    assert "**.ipynb" not in config["exclude_patterns"]
    assert "notebooks/reproduce_x.ipynb" in config["exclude_patterns"]
    assert "book/page.ipynb" not in config["exclude_patterns"]
    assert config["execute"] == {"execute_notebooks": "force", "exclude_patterns": ["*.ipynb"]}


def test_stage_book_without_artefacts_executes_every_page(repo: Path) -> None:
    plan = stage_book(repo, repo / "_build" / "stage", repo / "_build" / "test-notebooks")
    assert plan["book/page.md"] == plan["notebooks/reproduce_x.md"] == "executed"
    stage_book(repo, repo / "_build" / "stage", repo / "_build" / "test-notebooks")  # restaging replaces the tree
