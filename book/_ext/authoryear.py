"""Author-year citations, one style in the text and in the bibliography, with same-author-same-year papers told apart.

sphinxcontrib-bibtex's ``author_year`` style writes "Xuan et al., 2020" for both Xuan et al. papers of 2020 and
labels the bibliography with numbers. This extension (``sphinx.local_extensions`` in ``_config.yml``) registers

* in the ``author_year`` referencing style, a year that carries the letter telling two papers apart ("Xuan et al.,
  2020a", "Xuan et al., 2020b"): the style's templates read the module-level name ``year`` when they are built, and
  :func:`_register_styles` points that name at a node that adds the letter;
* the referencing style ``author_year_round``: ``author_year`` with round brackets and "; " between the works of
  one citation, "(Xuan et al., 2020a; Xuan et al., 2020b)" and "Xuan et al. (2020a)";
* the bibliography style ``authoryear``: pybtex's ``unsrt`` entries, labelled "Xuan et al., 2020a" and sorted by
  author, year and title.

The letters follow the titles' alphabetical order within each author-year group, as APA does. The Colab twins
(``tests/twins.py``) use :func:`citation_labels` so that they cite exactly as the book does.
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pybtex.richtext import Text

MAX_NAMED_AUTHORS = 2  # three or more authors: "First et al."


def _plain(latex: str) -> str:
    return Text.from_latex(latex).render_as("text")


def author_text(entry: Any) -> str:
    """ "Last", "Last and Other" or "Last et al." from an entry's authors (else editors, else its title)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [_plain(" ".join(person.prelast_names + person.last_names)) for person in persons]
    if not last:
        return _plain(entry.fields.get("title", entry.key))
    if len(last) > MAX_NAMED_AUTHORS:
        return f"{last[0]} et al."
    return " and ".join(last)


def entry_labels(entries: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{key: {"text": authors, "year": year with its letter}}``; a letter only where author and year collide."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, entry in entries.items():
        groups[(author_text(entry), entry.fields.get("year", "n.d."))].append(key)
    labels = {}
    for (authors, year), keys in groups.items():
        keys.sort(key=lambda k: _plain(entries[k].fields.get("title", k)).lower())
        letters = string.ascii_lowercase if len(keys) > 1 else [""] * len(keys)
        for key, letter in zip(keys, letters):
            labels[key] = {"text": authors, "year": f"{year}{letter}"}
    return labels


def citation_labels(bib_path: str | Path) -> dict[str, dict[str, str]]:
    """:func:`entry_labels` of a ``.bib`` file."""
    from pybtex.database import parse_file

    return entry_labels(dict(parse_file(str(bib_path)).entries))


_LABELS: dict[str, dict[str, str]] = {}


def _register_styles() -> None:
    from pybtex.plugin import register_plugin as register_pybtex
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle
    from sphinxcontrib.bibtex.plugin import register_plugin
    from sphinxcontrib.bibtex.style.referencing import BracketStyle, author_year, basic_author_year
    from sphinxcontrib.bibtex.style.template import node

    @node
    def year_with_letter(children, data):
        assert not children
        entry = data["entry"]
        return Text(_LABELS.get(entry.key, {}).get("year") or entry.fields.get("year", "n.d."))

    basic_author_year.year = year_with_letter  # the templates of both author-year styles read this name

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = entry_labels({entry.key: entry for entry in sorted_entries})
            for entry in sorted_entries:
                yield f"{labels[entry.key]['text']}, {labels[entry.key]['year']}"

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = AuthorYearLabels
        default_sorting_style = SortingStyle

    register_pybtex("pybtex.style.formatting", "authoryear", AuthorYearStyle)

    @dataclass
    class RoundAuthorYear(author_year.AuthorYearReferenceStyle):
        """(Author, 2020a; Other, 2019) and Author (2020a), as author-year styles write them."""

        bracket_parenthetical: BracketStyle = field(default_factory=lambda: BracketStyle("(", ")", "; "))
        bracket_textual: BracketStyle = field(default_factory=lambda: BracketStyle("(", ")", "; "))

    register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYear)


def _load_labels(app: Any) -> None:
    _LABELS.clear()
    for bib in app.config.bibtex_bibfiles:
        _LABELS.update(citation_labels(Path(app.confdir) / bib))


def setup(app: Any) -> dict[str, Any]:
    _register_styles()
    app.connect("builder-inited", _load_labels)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
