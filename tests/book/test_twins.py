"""The Colab twins (tests/twins.py), the install cell written from _config.yml (tests/pages.py) and the author-year
labels of the bibliography (book/_ext/authoryear.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import yaml

from tests.pages import REPO, install_cell, repository_url, sync_install_cell, sync_twins
from tests.twins import build_index, readable_markdown

BIB = """
@inproceedings{xuan2020hard, title = {Hard Negative Examples are Hard, but Useful},
  author = {Xuan, Hong and Stylianou, Abby and Liu, Xiaotong and Pless, Robert}, year = {2020}}
@inproceedings{xuan2020easy, title = {Improved Embeddings with Easy Positive Triplet Mining},
  author = {Xuan, Hong and Stylianou, Abby and Pless, Robert}, year = {2020}}
@article{sohn2016npair, title = {N-pair}, author = {Sohn, Kihyuk}, year = {2016}}
@article{ohsong2016lifted, title = {Lifted}, author = {Oh Song, Hyun and Xiang, Yu}, year = {2016}}
"""

PAGE_A = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---
# Page A

(sec-intro)=
## The introduction

Text citing {cite:p}`xuan2020hard,xuan2020easy` and {cite:t}`sohn2016npair`; see {numref}`fig-two` and
{ref}`sec-intro`, and {doc}`b`.

```{code-cell} ipython3
# Colab setup: old cell
print("old")
```

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: |
      The first figure, after {cite:t}`ohsong2016lifted`.
    name: fig-one
---
x = 1
```

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: The second figure.
    name: fig-two
---
y = 2
```

```{note}
A note on two lines,
the second.
```

1. An exercise.

   ```{dropdown} Solution
   The answer.
   ```
"""

PAGE_B = """# Page B

(sec-b)=
## Section of B

Back to {numref}`fig-one` and {ref}`the intro <sec-intro>`.
"""


def _book(tmp_path: Path, url: str = "https://github.com/someone/fork") -> Path:
    (tmp_path / "book" / "_ext").mkdir(parents=True)
    (tmp_path / "book" / "_ext" / "authoryear.py").write_text((REPO / "book/_ext/authoryear.py").read_text())
    (tmp_path / "book" / "references.bib").write_text(BIB)
    (tmp_path / "book" / "a.md").write_text(PAGE_A)
    (tmp_path / "book" / "b.md").write_text(PAGE_B)
    (tmp_path / "_toc.yml").write_text(
        yaml.safe_dump({"format": "jb-book", "root": "book/a", "chapters": [{"file": "book/b"}]})
    )
    config = {
        "repository": {"url": url, "branch": "main"},
        "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    }
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_roles_become_text_and_links(tmp_path: Path) -> None:
    repo = _book(tmp_path)
    pages = [repo / "book/a.md", repo / "book/b.md"]
    index = build_index(repo, pages, {pages[0]})
    text = readable_markdown(PAGE_A.split("# Page A")[1], index, pages[0])
    assert "(Xuan et al., 2020a; Xuan et al., 2020b)" in text  # "Hard ..." sorts before "Improved ..."
    assert "Sohn (2016)" in text
    assert "see Fig. 2 and\nThe introduction" in text  # numbered in toc order, as the book does; same page: plain
    assert "[Page B](https://github.com/someone/fork/blob/main/book/b.md)" in text  # no code: the page on GitHub
    assert "(sec-intro)=" not in text and "{" not in text.split("```{code-cell}")[0]
    glued = readable_markdown("R@1 is {glue:text}`r1:.3f` here.", index, pages[0])
    assert glued == "R@1 is `r1` (computed by the code above) here."
    assert "> **Note.**\n> A note on two lines,\n> the second." in text
    assert "   <details><summary>Solution</summary>\n\n   The answer.\n\n   </details>" in text
    back = readable_markdown(PAGE_B, index, pages[1])
    colab = "https://colab.research.google.com/github/someone/fork/blob/main/book/a.ipynb"
    assert f"Fig. 1 of [Page A]({colab})" in back and f"[the intro]({colab})" in back


def test_sync_writes_the_install_cell_from_config_and_caption_cells(tmp_path: Path) -> None:
    repo = _book(tmp_path, url="https://github.com/someone/fork")
    sync_twins(repo)
    page = (repo / "book/a.md").read_text()
    assert install_cell(repo / "book/a.md", repo) in page and "old cell" not in page
    assert 'REPOSITORY = "https://github.com/someone/fork"' in page
    twin = nbformat.read(repo / "book/a.ipynb", as_version=4)
    code = [c for c in twin.cells if c.cell_type == "code"]
    assert code[0].source == install_cell(repo / "book/a.md", repo) and not any(c.outputs for c in code)
    captions = [c.source for c in twin.cells if c.cell_type == "markdown" and c.source.startswith("**Fig.")]
    assert captions == [
        "**Fig. 1.** The first figure, after Oh Song and Xiang (2016).",
        "**Fig. 2.** The second figure.",
    ]
    before = (repo / "book/a.ipynb").read_bytes()
    sync_twins(repo)
    assert (repo / "book/a.ipynb").read_bytes() == before, "re-syncing an unchanged page must not change its twin"
    assert not sync_install_cell(repo / "book/a.md", repo)


def _authoryear():
    spec = importlib.util.spec_from_file_location("authoryear", REPO / "book/_ext/authoryear.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_two_references_share_an_author_year_label() -> None:
    labels = _authoryear().citation_labels(REPO / "book/references.bib")
    texts = [f"{label['text']}, {label['year']}" for label in labels.values()]
    assert len(texts) == len(set(texts)), sorted(t for t in texts if texts.count(t) > 1)
    assert labels["xuan2020hard"]["year"] == "2020a" and labels["xuan2020easy"]["year"] == "2020b"


def test_install_cell_without_the_package_says_how_to_install_it(tmp_path: Path) -> None:
    """Outside Colab, a kernel without dml stops at the first cell with one line, not at a later import."""
    import subprocess
    import sys

    cell = install_cell(REPO / "book" / "losses.md")
    # -S: no site-packages, so neither the installed nor the editable dml can be imported (run outside the repo)
    result = subprocess.run([sys.executable, "-S", "-c", cell], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'dml @ git+{repository_url()}'" in lines[0], lines
