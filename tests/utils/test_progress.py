"""dml.utils.progress: the text bar without ipywidgets (no TqdmWarning in a page), tqdm.auto's choice with it."""

from __future__ import annotations

import importlib
import importlib.util
import warnings

import tqdm.std

import dml.utils.progress as progress


def test_text_bar_without_ipywidgets_and_no_warning(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "ipywidgets" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress._progress_class() is tqdm.std.tqdm


def test_auto_bar_with_ipywidgets(monkeypatch) -> None:
    import tqdm.auto

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return object() if name == "ipywidgets" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert progress._progress_class() is tqdm.auto.tqdm
