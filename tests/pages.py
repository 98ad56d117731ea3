"""Find the executable pages of the book: every file in ``_toc.yml`` that has code cells.

It also stages the book build so that each page is executed once per CI run: the regression suite
(``tests/book/test_notebooks.py``) stores in each executed notebook a fingerprint of what produced it
(:func:`fingerprint`), and ``python -m tests.pages --stage-book`` writes a source tree under ``_build/stage``
where a page whose executed notebook is fresh is that notebook (outputs kept, papermill's injected-parameters cell
removed, excluded from execution) and every other page is its MyST-Markdown source, executed by the build.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "_build" / "test-notebooks"
STAGE = REPO / "_build" / "stage"
BOOK_PROFILE = "smoke"
CODE_CELL_FENCE = "```{code-cell} ipython3"
COLAB_CHECKOUT = "/content/dml"
INSTALL_CELL_TAGS = ":tags: [hide-cell]"

# The first code cell of every executable page. {url} is ``repository.url`` of _config.yml and {folder} the
# page's folder; `python -m tests.pages --sync-twins` writes it into every page and twin. Lines <= 84 characters:
# the cell is folded (hide-cell), and the fold's padding narrows it at 1280 px.
INSTALL_CELL = """\
# Setup: the same first cell on every page, written from _config.yml.
# On Colab: clone the course repository, install it, work in this page's folder.
# Elsewhere: check that dml is installed, else say how to install it.
import os
import subprocess
import sys

REPOSITORY = "{url}"
CHECKOUT = "{checkout}"
if "google.colab" in sys.modules:
    if not os.path.isdir(CHECKOUT):
        clone = ["git", "clone", "--depth", "1", REPOSITORY, CHECKOUT]
        subprocess.run(clone, check=True)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "-e", CHECKOUT]
    subprocess.run(install, check=True)
    sys.path.insert(0, CHECKOUT)  # a running kernel misses a new editable install
    os.chdir(os.path.join(CHECKOUT, "{folder}"))
else:
    try:
        import dml.notebook  # noqa: F401
    except ImportError:
        raise SystemExit(
            "The dml package is not installed in this kernel: run pip install "
            f"'dml @ git+{{REPOSITORY}}' (or pip install -e . in a clone of it), "
            "then restart the kernel."
        ) from None"""


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
    return _toc_pages(REPO)


def _toc_pages(repo: Path) -> list[Path]:
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    pages = []
    for entry in _files(toc):
        for ext in (".md", ".ipynb", ""):
            candidate = repo / (entry + ext)
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


def repository_url(repo: Path = REPO) -> str:
    """``repository.url`` of ``_config.yml``: the one place the course's repository is named (change it for a fork)."""
    config = yaml.safe_load((repo / "_config.yml").read_text())
    url = (config.get("repository") or {}).get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(f"_config.yml: repository.url must be the https URL of the course repository, got {url!r}")
    return url.rstrip("/")


def install_cell(page: Path, repo: Path = REPO) -> str:
    """The source of the first code cell of ``page`` (see ``INSTALL_CELL``)."""
    folder = page.resolve().parent.relative_to(repo.resolve()).as_posix()
    return INSTALL_CELL.format(url=repository_url(repo), checkout=COLAB_CHECKOUT, folder=folder)


def first_code_cell(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of the body of the first ``{code-cell}`` of a MyST page (between its fences), or None."""
    fence = text.find(CODE_CELL_FENCE)
    if fence < 0:
        return None
    start = text.index("\n", fence) + 1
    end = text.index("\n```", start - 1) + 1
    return start, end


def _code_of(body: str) -> str:
    """A cell body without its option lines (``:tags: ...``)."""
    lines = body.splitlines(keepends=True)
    while lines and lines[0].startswith(":"):
        lines.pop(0)
    return "".join(lines).lstrip("\n")


def sync_install_cell(page: Path, repo: Path = REPO) -> bool:
    """Make the first code cell of a MyST ``page`` the install cell, tagged ``hide-cell`` (folded in the book, one
    click to read); True if the file changed. A page whose first code cell is not a setup cell (its code does not
    start with ``# Setup`` or ``# Colab setup``) gets the install cell inserted before it."""
    text = page.read_text(encoding="utf-8")
    span = first_code_cell(text)
    if span is None:
        return False
    start, end = span
    cell = f"{INSTALL_CELL_TAGS}\n{install_cell(page, repo)}\n"
    if _code_of(text[start:end]).startswith(("# Setup", "# Colab setup")):
        new = text[:start] + cell + text[end:]
    else:
        fence = start - len(CODE_CELL_FENCE) - 1
        new = text[:fence] + f"{CODE_CELL_FENCE}\n{cell}```\n\n" + text[fence:]
    if new == text:
        return False
    page.write_text(new, encoding="utf-8")
    return True


def colab_twin(page: Path, index=None, repo: Path = REPO):
    """The Colab twin of a MyST ``page`` as a notebook: its cells, output-free, markdown readable in Colab
    (``tests/twins.py``). ``index`` (:func:`tests.twins.build_index`) is built when not given."""
    import jupytext

    from tests import twins

    if index is None:
        pages = _toc_pages(repo)
        index = twins.build_index(repo, pages, {p for p in pages if has_code(p)})
    return twins.colab_notebook(jupytext.read(page), index, page)


def sync_twins(repo: Path = REPO) -> list[Path]:
    """Write ``page.ipynb`` next to every executable ``page.md``: its Colab twin (:func:`colab_twin`).

    First the install cell of every page is rewritten from ``_config.yml`` (:func:`sync_install_cell`).
    """
    import jupytext

    from tests import twins

    pages = [page for page in _toc_pages(repo) if has_code(page) and page.suffix == ".md"]
    for page in pages:
        sync_install_cell(page, repo)
    everything = _toc_pages(repo)
    index = twins.build_index(repo, everything, {p for p in everything if has_code(p)})
    written = []
    for page in pages:
        twin = page.with_suffix(".ipynb")
        jupytext.write(colab_twin(page, index, repo), twin, fmt="ipynb")
        written.append(twin)
    return written


def recipe_folder(page: Path) -> Path | None:
    """The recipe folder a reproduction page loads (``notebooks/reproduce_sct.md`` -> ``notebooks/sct/``), if any."""
    folder = page.parent / page.stem.removeprefix("reproduce_")
    return folder if folder.is_dir() and folder != page.parent else None


def _inputs(page: Path, repo: Path) -> list[Path]:
    files = [page, *sorted(p for p in (repo / "dml").rglob("*") if p.is_file() and "__pycache__" not in p.parts)]
    folder = recipe_folder(page)
    if folder is not None:
        files += sorted(p for p in folder.rglob("*") if p.is_file())
    return files


def fingerprint(page: Path, profile: str = BOOK_PROFILE, repo: Path = REPO) -> str:
    """SHA-256 of what an execution of ``page`` depends on: its text, every file of ``dml/``, its recipe folder,
    and the profile. An executed notebook whose stored fingerprint differs from this one is stale."""
    digest = hashlib.sha256(f"profile={profile}\n".encode())
    for path in _inputs(page, repo):
        digest.update(f"{path.relative_to(repo).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def stamp(executed: Path, page: Path, profile: str, seconds: float, repo: Path = REPO) -> None:
    """Record in the executed notebook's metadata the fingerprint of what produced it (see :func:`fresh_notebook`)."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata["dml"] = {
        "page": page.relative_to(repo).as_posix(),
        "profile": profile,
        "fingerprint": fingerprint(page, profile, repo),
        "seconds": round(seconds, 1),
    }
    nbformat.write(notebook, executed)


def fresh_notebook(page: Path, artefacts: Path = ARTEFACTS, repo: Path = REPO) -> Any | None:
    """The regression run's executed notebook of ``page`` if it is fresh, ready for the book; otherwise None.

    Fresh: it exists, ran with the book's profile and its fingerprint matches the current files. Ready: the cell
    papermill injected (its parameters name ``_build`` paths) is removed and papermill's metadata dropped.
    """
    import nbformat

    executed = artefacts / f"{baseline_name(page)}.ipynb"
    if not executed.is_file():
        return None
    notebook = nbformat.read(executed, as_version=4)
    stored = notebook.metadata.get("dml", {})
    if stored.get("profile") != BOOK_PROFILE or stored.get("fingerprint") != fingerprint(page, BOOK_PROFILE, repo):
        return None
    notebook.cells = [c for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return notebook


def _stage_config(repo: Path, stage: Path, twins: list[str]) -> None:
    config = yaml.safe_load((repo / "_config.yml").read_text())
    # The twins of executed pages stay out of the build; a reused page is an .ipynb, so "**.ipynb" cannot be used.
    patterns = [p for p in config.get("exclude_patterns", []) if p not in ("**.ipynb",)]
    config["exclude_patterns"] = patterns + twins
    # Reused notebooks are built from their outputs; the other pages are executed as in `jupyter-book build .`.
    config.setdefault("execute", {})["exclude_patterns"] = ["*.ipynb"]
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def _link_neighbours(folder: Path, repo: Path, stage: Path, pages: set[Path]) -> None:
    """Symlink what pages may read next to them (recipe folders, the bibliography), not the pages themselves."""
    target_dir = stage / folder.relative_to(repo)
    target_dir.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.with_suffix("") in pages or entry.name.startswith("."):
            continue
        (target_dir / entry.name).symlink_to(entry)


def stage_book(repo: Path = REPO, stage: Path = STAGE, artefacts: Path = ARTEFACTS) -> dict[str, str]:
    """Write the book's staging source tree; returns ``{page: "reused" | "executed" | "static"}``."""
    import nbformat

    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    pages = _toc_pages(repo)
    stems = {page.with_suffix("") for page in pages}
    for folder in sorted({page.parent for page in pages}):
        _link_neighbours(folder, repo, stage, stems)
    shutil.copy2(repo / "_toc.yml", stage / "_toc.yml")
    plan, twins = {}, []
    for page in pages:
        relative = page.relative_to(repo)
        notebook = fresh_notebook(page, artefacts, repo) if has_code(page) else None
        if notebook is not None:
            nbformat.write(notebook, stage / relative.with_suffix(".ipynb"))
            plan[relative.as_posix()] = "reused"
            continue
        shutil.copy2(page, stage / relative)
        twin = page.with_suffix(".ipynb")
        if page.suffix == ".md" and twin.is_file():
            shutil.copy2(twin, stage / relative.with_suffix(".ipynb"))  # found on disk by the Colab button
            twins.append(relative.with_suffix(".ipynb").as_posix())
        plan[relative.as_posix()] = "executed" if has_code(page) else "static"
    _stage_config(repo, stage, twins)
    return plan


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--sync-twins"]:
        for path in sync_twins():
            print(f"wrote {path.relative_to(REPO)}")
    elif sys.argv[1:] == ["--stage-book"]:
        for page, how in stage_book().items():
            print(f"{how:>8}  {page}")
        print(STAGE.relative_to(REPO))
    else:
        sys.exit("usage: python -m tests.pages --sync-twins | --stage-book")
