"""Colab twins of the book pages: the same cells as the MyST-Markdown page, output-free, and readable in Colab.

Colab renders plain Markdown, so a twin written cell for cell from its page would show raw MyST markup. The twin's
markdown cells are therefore rewritten (the code cells are left as they are, so the twin runs exactly the page):

* ``{cite:p}`a,b``` -> "(Author et al., 2020a; Other, 2019)" and ``{cite:t}`a``` -> "Author et al. (2020a)", with
  the labels of the book's bibliography (``book/_ext/authoryear.py``);
* ``{doc}`page``` -> a link to the page's title (its Colab twin when it has one, else the page on GitHub);
* ``{ref}`label``` -> the section's title, ``{numref}`fig-x``` -> "Fig. N" (N counted across the pages in the
  order of ``_toc.yml``, as the book numbers them), both linked when the target is on another page;
* ``{glue:text}`name``` (a number a cell computes) -> the name in code font, "(computed by the code above)";
* ``{note}`` and other admonitions -> a quoted paragraph, ``{dropdown}`` -> an HTML ``<details>`` block,
  ``(label)=`` targets -> removed;
* every figure's caption (``mystnb.figure.caption`` of a code cell) -> a markdown cell "**Fig. N.** caption"
  right under the cell that draws it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLE = re.compile(r"\{(cite:p|cite:t|cite|doc|ref|numref|eq|math|glue:text|glue)\}`([^`]*)`")
EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.DOTALL)
TARGET = re.compile(r"^\(([\w:.-]+)\)=\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|:{3,})\{([\w-]+)\}\s*(.*?)\s*$")
FIGURE_NAME = re.compile(r"^\s*name:\s*([\w:.-]+)\s*$", re.MULTILINE)
ADMONITIONS = {"note", "tip", "important", "warning", "caution", "attention", "hint", "seealso", "admonition"}


@dataclass
class PageInfo:
    path: Path
    title: str
    link: str
    sections: dict[str, str] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)


@dataclass
class BookIndex:
    """What the roles of a page can point at: every page of the table of contents, its sections and figures."""

    repo: Path
    pages: dict[Path, PageInfo]
    labels: dict[str, dict[str, str]]  # key -> {"text": "Xuan et al.", "year": "2020a"}

    def page_of(self, label: str, kind: str) -> PageInfo | None:
        for info in self.pages.values():
            if label in getattr(info, kind):
                return info
        return None


def _github_parts(url: str) -> tuple[str, str] | None:
    match = re.match(r"^https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    return (match.group(1), match.group(2)) if match else None


def page_link(repo: Path, page: Path, executable: bool) -> str:
    """The Colab link of a page's twin (executable pages), else the page on GitHub; '' for a non-GitHub repository."""
    config = yaml.safe_load((repo / "_config.yml").read_text())
    repository = config.get("repository") or {}
    parts = _github_parts(str(repository.get("url", "")))
    if parts is None:
        return ""
    owner, name = parts
    branch = repository.get("branch", "main")
    relative = page.relative_to(repo)
    if executable:
        colab = config.get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com").rstrip("/")
        return f"{colab}/github/{owner}/{name}/blob/{branch}/{relative.with_suffix('.ipynb').as_posix()}"
    return f"https://github.com/{owner}/{name}/blob/{branch}/{relative.as_posix()}"


def _outside_code(lines: list[str]) -> list[tuple[int, str]]:
    """(index, line) of the lines of a MyST page that are not inside a code cell or a fenced code block."""
    kept, fence = [], None
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if fence is None and stripped.startswith("```"):
            ticks = len(stripped) - len(stripped.lstrip("`"))
            rest = stripped[ticks:]
            if rest.startswith("{code-cell}") or not rest.startswith("{"):
                fence = "`" * ticks
                continue
        elif fence is not None:
            if stripped.rstrip() == fence:
                fence = None
            continue
        kept.append((index, line))
    return kept


def scan_page(repo: Path, page: Path, executable: bool) -> PageInfo:
    """The title, section labels (``(label)=`` before a heading) and figure numbers of one page."""
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    title, sections, pending = page.stem, {}, []
    for _, line in _outside_code(lines):
        target = TARGET.match(line)
        heading = HEADING.match(line)
        if target:
            pending.append(target.group(1))
        elif heading:
            if heading.group(1) == "#" and title == page.stem:
                title = heading.group(2)
            sections.update({label: heading.group(2) for label in pending})
            pending = []
        elif line.strip():
            pending = []
    figures = {name: number for number, name in enumerate(figure_names(text), 1)}
    return PageInfo(page, title, page_link(repo, page, executable), sections, figures)


def figure_names(text: str) -> list[str]:
    """The names of a page's figures in order: code cells with a ``mystnb.figure`` option, ``{figure}`` blocks."""
    names = []
    for block in re.finditer(r"^```\{(code-cell|figure)\}[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        body = block.group(2)
        if block.group(1) == "code-cell":
            header = re.match(r"---\n(.*?)\n---\n", body, re.DOTALL)
            figure = (yaml.safe_load(header.group(1)) or {}).get("mystnb", {}).get("figure") if header else None
            if figure and figure.get("name"):
                names.append(figure["name"])
        else:
            name = re.search(r"^:name:\s*(\S+)", body, re.MULTILINE)
            if name:
                names.append(name.group(1))
    return names


def build_index(repo: Path, pages: list[Path], executable: set[Path]) -> BookIndex:
    import importlib.util

    spec = importlib.util.spec_from_file_location("authoryear", repo / "book" / "_ext" / "authoryear.py")
    authoryear = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(authoryear)
    labels = authoryear.citation_labels(repo / "book" / "references.bib")
    infos = {page: scan_page(repo, page, page in executable) for page in pages}
    number = 0  # the book numbers figures across pages, in the order of the table of contents
    for info in infos.values():
        for name in info.figures:
            number += 1
            info.figures[name] = number
    return BookIndex(repo, infos, labels)


def _cite(keys: str, role: str, index: BookIndex, page: Path) -> str:
    parts = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in index.labels:
            raise KeyError(f"{page.name} cites {key!r}, which book/references.bib lacks")
        label = index.labels[key]
        parts.append(f"{label['text']} ({label['year']})" if role == "cite:t" else f"{label['text']}, {label['year']}")
    return "; ".join(parts) if role == "cite:t" else f"({'; '.join(parts)})"


def _linked(text: str, target: PageInfo | None, page: Path) -> str:
    if target is None or target.path == page or not target.link:
        return text
    return f"[{text}]({target.link})"


def _resolve_doc(target: str, page: Path, index: BookIndex) -> PageInfo | None:
    base = (page.parent / target).resolve()
    for path, info in index.pages.items():
        if path.with_suffix("").resolve() == base:
            return info
    return None


def _role(match: re.Match, index: BookIndex, page: Path) -> str:
    role, content = match.group(1), match.group(2)
    if role.startswith("cite"):
        return _cite(content, role, index, page)
    if role == "math":
        return f"${content}$"
    if role.startswith("glue"):
        return f"`{content.split(':')[0]}` (computed by the code above)"
    explicit = EXPLICIT.match(content)
    text, target = (explicit.group(1), explicit.group(2)) if explicit else (None, content)
    if role == "eq":
        return f"({target})"
    if role == "doc":
        info = _resolve_doc(target, page, index)
        return _linked(text or (info.title if info else target), info, page)
    if role == "ref":
        info = index.page_of(target, "sections")
        return _linked(text or (info.sections[target] if info else target), info, page)
    info = index.page_of(target, "figures")
    number = info.figures[target] if info else "?"
    label = text.replace("%s", str(number)) if text else f"Fig. {number}"
    return label if info is None or info.path == page else f"{label} of {_linked(info.title, info, page)}"


def _directives(source: str) -> str:
    """Admonitions become quoted paragraphs and dropdowns ``<details>`` blocks; targets are dropped."""
    out, stack = [], []  # stack of (closing fence, kind, indent)
    for line in source.splitlines():
        if stack and line.strip() == stack[-1][0]:
            _, kind, indent = stack.pop()
            if kind == "dropdown":
                out += ["", f"{indent}</details>"]
            continue
        opened = FENCE_OPEN.match(line)
        if opened and (opened.group(3) in ADMONITIONS or opened.group(3) == "dropdown"):
            indent, fence, kind, title = opened.groups()
            stack.append((fence, kind, indent))
            if kind == "dropdown":
                out += [f"{indent}<details><summary>{title or 'Details'}</summary>", ""]
            else:
                heading = title if kind == "admonition" else kind.capitalize()
                out.append(f"{indent}> **{heading}.**")
            continue
        if TARGET.match(line):
            continue
        if stack and stack[-1][1] != "dropdown":
            indent = stack[-1][2]
            line = f"{indent}> {line[len(indent) :]}" if line.strip() else f"{indent}>"
        out.append(line)
    return "\n".join(out).strip("\n")


def readable_markdown(source: str, index: BookIndex, page: Path) -> str:
    return _directives(ROLE.sub(lambda m: _role(m, index, page), source))


def _caption_cell(cell: Any, index: BookIndex, page: Path) -> Any | None:
    import nbformat

    figure = cell.metadata.get("mystnb", {}).get("figure") or {}
    caption = str(figure.get("caption", "")).strip()
    if not caption:
        return None
    number = index.pages[page].figures.get(figure.get("name"), "")
    text = " ".join(readable_markdown(caption, index, page).split())
    return nbformat.v4.new_markdown_cell(f"**Fig. {number}.** {text}")


def colab_notebook(notebook: Any, index: BookIndex, page: Path) -> Any:
    """The twin of ``page``: markdown made readable, a caption cell under each figure, no outputs, stable ids."""
    twin = copy.deepcopy(notebook)
    cells = []
    for cell in twin.cells:
        if cell.cell_type == "markdown":
            cell.source = readable_markdown(cell.source, index, page)
            if not cell.source.strip():
                continue
        cells.append(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            caption = _caption_cell(cell, index, page)
            if caption is not None:
                cells.append(caption)
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"  # stable ids: re-syncing an unchanged page leaves its twin byte-identical
    twin.cells = cells
    return twin
