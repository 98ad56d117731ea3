"""What a reproduction page needs from the trainer: a split as evaluation sees it, the test evaluation, epoch 0.

This is the one module of :mod:`dml.reproduce` that calls into :mod:`dml.train` for data, evaluation and the
initial model, so that no page re-implements the trainer's seeding order; and :class:`MarginBetaLog`, the
trainer callback that logs the margin loss's learned β at every epoch end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dml.train.callbacks import Callback
from dml.train.config import Config


def probe(config: Config, split: str, limit: int | None = None, *, seed: int = 0) -> Any:
    """One split as the evaluation sees it (no augmentation), at most ``limit`` images of whole classes drawn with
    ``seed``, so that every kept anchor keeps its positives (:func:`dml.data.evaluation_split`)."""
    from dml.data import evaluation_split
    from dml.train import resolve_device

    return evaluation_split(
        config.data,
        split,
        batch_size=config.eval.batch_size,
        device=resolve_device(config.device),
        max_items=limit,
        seed=seed,
    )[0]


def split_labels(config: Config, split: str) -> Any:
    """The labels of a whole split, in evaluation order."""
    from dml.data import evaluation_split

    return evaluation_split(config.data, split, batch_size=config.eval.batch_size)[1]


def test_evaluation(config: Config) -> Any:
    """What the trainer evaluates: the test split under the dataset's protocol."""
    from dml.data import build_loaders
    from dml.train import resolve_device

    return build_loaders(
        config.data,
        protocol=config.eval.protocol,
        seed=config.seed,
        eval_batch_size=config.eval.batch_size,
        device=resolve_device(config.device),
    ).evaluation


test_evaluation.__test__ = False  # not a pytest test


def initial_model(config: Config) -> Any:
    """The untrained network that ``dml.train.train(config)`` starts from: seeded with ``config.seed`` exactly as
    the trainer seeds right before it builds the model, on the config's device."""
    from dml.train import build_model, resolve_device
    from dml.utils import seed_everything

    seed_everything(config.seed, deterministic=config.deterministic)
    return build_model(config).to(resolve_device(config.device))


def epoch_zero(
    config: Config, *, diagnostics: Mapping[str, Any] | None = None, probe_limit: int | None = None
) -> dict[str, Any]:
    """The epoch-0 record of a run: test metrics of :func:`initial_model` and, when ``diagnostics`` (keyword
    arguments of :func:`dml.diagnostics.epoch_diagnostics`) are given, the diagnostics of the training split
    (at most ``probe_limit`` images) under ``train_`` keys, as :func:`dml.diagnostics.diagnostics_callback` records
    them at later epochs."""
    from dml.diagnostics import epoch_diagnostics
    from dml.eval import evaluate
    from dml.train import resolve_device

    model = initial_model(config)
    e = config.eval
    metrics = evaluate(
        model,
        test_evaluation(config),
        ks=e.ks,
        include=e.include,
        batch_size=e.batch_size,
        device=resolve_device(config.device),
        seed=config.seed,
        lone_queries=e.lone_queries,
    )
    record = {"epoch": 0, **metrics}
    if diagnostics is not None:
        record.update(
            epoch_diagnostics(
                model,
                probe(config, "train", probe_limit),
                batch_size=config.eval.batch_size,
                prefix="train_",
                **diagnostics,
            )
        )
    return record


def train_diagnostics_callback(
    config: Config, *, diagnostics: Mapping[str, Any], probe_limit: int | None = None
) -> Any:
    """A :func:`dml.diagnostics.diagnostics_callback` on the training split (at most ``probe_limit`` images) for
    the epochs the run evaluates (``config.eval.every`` and the last); the ``callback`` of :func:`run_methods`."""
    from dml.diagnostics import diagnostics_callback

    return diagnostics_callback(
        {"train": probe(config, "train", probe_limit)},
        batch_size=config.eval.batch_size,
        every=config.eval.every,
        last=config.train.epochs,
        **diagnostics,
    )


class MarginBetaLog(Callback):
    """Records the margin loss's learned β at every epoch end (:func:`dml.diagnostics.margin_beta`: ``beta``,
    ``beta_std``, ``beta_min``, ``beta_max``), with the trainer's ``on_loss_built`` hook giving it the run's loss;
    ``also`` is an optional ``on_epoch_end(epoch, model)`` function whose numbers are added (e.g.
    :func:`train_diagnostics_callback`). A :func:`run_methods` ``callback`` may return one (``lambda c:
    MarginBetaLog()``); with ``eval.at_start`` epoch 0 records the initial β."""

    def __init__(self, *, also: Any = None) -> None:
        self.also = also
        self.loss: Any = None

    def on_loss_built(self, loss_fn: Any) -> None:
        self.loss = loss_fn

    def on_epoch_end(self, epoch: int, model: Any) -> dict[str, Any]:
        from dml.diagnostics import margin_beta

        if self.loss is None:
            raise RuntimeError("MarginBetaLog saw no loss: pass it to dml.train.train(callbacks=[...]).")
        record = margin_beta(self.loss)
        if self.also is not None:
            record.update(self.also(epoch, model) or {})
        return record
