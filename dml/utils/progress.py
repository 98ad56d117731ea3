"""The progress bar class of the package: tqdm's notebook widget where it can be drawn, its text bar elsewhere.

``tqdm.auto`` picks the widget in every Jupyter kernel and, when ``ipywidgets`` is missing (a plain Jupyter, the
book build), warns ``TqdmWarning: IProgress not found`` at import time and falls back to the text bar. Choosing the
text bar ourselves when ``ipywidgets`` is not installed gives the same bar without the warning in a page's output.
"""

from __future__ import annotations

import importlib.util


def _progress_class() -> type:
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm as text_bar

        return text_bar
    from tqdm.auto import tqdm as auto_bar

    return auto_bar


tqdm = _progress_class()

__all__ = ["tqdm"]
