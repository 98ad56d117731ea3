"""Find the executable pages of the book: every file in ``_toc.yml`` that has code cells."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[1]


def _files(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                yield value
            else:
                yield from _files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _files(item)


def toc_pages() -> list[Path]:
    """Every page listed in ``_toc.yml``, resolved to the file on disk (``.md`` preferred, as Jupyter Book does)."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    pages = []
    for entry in _files(toc):
        for ext in (".md", ".ipynb", ""):
            candidate = REPO / (entry + ext)
            if candidate.is_file():
                pages.append(candidate)
                break
        else:
            raise FileNotFoundError(f"_toc.yml lists {entry!r} but no {entry}.md or {entry}.ipynb exists")
    return pages


def has_code(page: Path) -> bool:
    text = page.read_text(encoding="utf-8")
    if page.suffix == ".md":
        return "```{code-cell}" in text
    import nbformat

    return any(cell.cell_type == "code" for cell in nbformat.reads(text, as_version=4).cells)


def executable_pages() -> list[Path]:
    return [page for page in toc_pages() if has_code(page)]


def baseline_name(page: Path) -> str:
    return page.stem


def sync_twins() -> list[Path]:
    """Write ``page.ipynb`` next to every executable ``page.md``: the same cells, no outputs (for Colab)."""
    import jupytext

    written = []
    for page in executable_pages():
        if page.suffix != ".md":
            continue
        notebook = jupytext.read(page)
        for index, cell in enumerate(notebook.cells):
            cell.id = f"cell-{index}"  # stable ids: re-syncing an unchanged page leaves its twin byte-identical
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        twin = page.with_suffix(".ipynb")
        jupytext.write(notebook, twin, fmt="ipynb")
        written.append(twin)
    return written


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--sync-twins"]:
        sys.exit("usage: python -m tests.pages --sync-twins")
    for path in sync_twins():
        print(f"wrote {path.relative_to(REPO)}")
