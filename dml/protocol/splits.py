"""The MLRC split manager on run configs: one config per class-disjoint fold, and the untouched test split.

Musgrave, Belongie & Lim (ECCV 2020) train and validate on the first half of the classes with ``k``-fold
class-disjoint cross-validation and keep the second half for one final test. The zero-shot splits of CUB-200-2011,
Cars196, SOP and the built-in synthetic data are such halves already, so for a run config ``config``:

* :func:`fold_config` is ``config`` with its data replaced by fold ``fold`` of its training classes (the dataset
  ``class_fold`` of :mod:`dml.data.folds`): it trains on the fold's training classes and its evaluation split is
  the fold's validation classes. The test classes are never loaded;
* :func:`test_config` is ``config`` itself: the test split of the dataset, for the final evaluation only.
"""

from __future__ import annotations

from pathlib import Path

from dml.train.config import Config, from_dict, to_dict


def fold_config(config: Config, *, fold: int, folds: int, output_dir: str | Path) -> Config:
    """``config`` trained on fold ``fold`` of ``folds``: its training classes minus the fold's validation block,
    evaluated (``data.eval_split: test``) on that block, written to ``output_dir``."""
    if config.data.name in ("class_fold", "heldout"):
        raise ValueError(
            f"fold_config needs the config of the whole dataset, not of a carved split ({config.data.name!r}); "
            "pass the dataset's own config."
        )
    record = to_dict(config)
    record["data"]["kwargs"] = {
        "source": config.data.name,
        "folds": int(folds),
        "fold": int(fold),
        "source_kwargs": dict(config.data.kwargs),
    }
    record["data"]["name"] = "class_fold"
    record["data"]["eval_split"] = "test"
    record["output_dir"] = str(output_dir)
    return from_dict(record)


def test_config(config: Config) -> Config:
    """The config whose evaluation split is the test classes (the dataset's ``test`` split)."""
    if config.data.eval_split != "test":
        raise ValueError(
            f"The protocol tests on the dataset's test split, but data.eval_split is {config.data.eval_split!r}; "
            "set data.eval_split=test."
        )
    return config


test_config.__test__ = False  # not a pytest test
