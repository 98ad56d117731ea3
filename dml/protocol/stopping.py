"""Early stopping on validation MAP@R, a trainer callback that keeps the best epoch's weights.

Musgrave et al. ("A Metric Learning Reality Check", ECCV 2020) stop a run when its validation MAP@R has not
improved for ``patience`` evaluations and test the model of its best validation epoch. :class:`EarlyStopping`
evaluates the validation classes itself after every ``every``-th epoch (so the run's own ``eval.every`` can be 0),
records the value as ``val_<metric>`` in the epoch's record of ``metrics.json``, keeps a copy of the weights of the
best epoch so far, and asks the trainer to stop (:meth:`~dml.train.Callback.should_stop`) after ``patience``
evaluations without a strict improvement. The state lives in the process: a killed run is retrained.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dml.train import Callback


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations of ``metric`` on ``evaluation`` without a strict improvement.

    Args:
        evaluation: A :class:`dml.eval.Evaluation` of the validation classes.
        patience: Evaluations without improvement before stopping (>= 1).
        metric: The metric to maximise, a key of :func:`dml.eval.evaluate`'s result.
        every: Evaluate after epochs ``every``, ``2 every``, ...
        batch_size, seed: For :func:`dml.eval.evaluate`.

    Attributes:
        best, best_epoch, best_state: The best value, its epoch and a CPU copy of the model's weights then.
        history: ``(epoch, value)`` of every evaluation.
    """

    def __init__(
        self,
        evaluation: Any,
        *,
        patience: int,
        metric: str = "map@r",
        every: int = 1,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if isinstance(patience, bool) or int(patience) != patience or patience < 1:
            raise ValueError(
                f"patience must be a positive integer (evaluations without improvement); got {patience!r}."
            )
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer (epochs between evaluations); got {every!r}.")
        self.evaluation, self.patience, self.metric = evaluation, int(patience), metric
        self.every, self.batch_size, self.seed = int(every), batch_size, seed
        self.best, self.best_epoch, self.best_state = float("-inf"), 0, None
        self.history: list[tuple[int, float]] = []
        self._waited = 0

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        if epoch % self.every:
            return None
        value = self.score(model)
        self.observe(epoch, value, model)
        return {f"val_{self.metric}": value}

    def score(self, model: nn.Module) -> float:
        """The validation ``metric`` of ``model``."""
        import dml.eval

        include = ["recall"] if self.metric.startswith("recall@") else [self.metric]
        ks = [int(self.metric.split("@")[1])] if self.metric.startswith("recall@") else [1]
        return float(
            dml.eval.evaluate(
                model, self.evaluation, ks=ks, include=include, batch_size=self.batch_size, seed=self.seed
            )[self.metric]
        )

    def observe(self, epoch: int, value: float, model: nn.Module | None = None) -> None:
        """Record one evaluation; a strict improvement resets the wait and keeps the weights."""
        self.history.append((epoch, value))
        if value > self.best:
            self.best, self.best_epoch, self._waited = value, epoch, 0
            if model is not None:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self._waited += 1

    def should_stop(self) -> bool:
        return self._waited >= self.patience

    def best_model(self, model: nn.Module) -> nn.Module:
        """``model`` with the weights of the best epoch loaded (in eval mode)."""
        if self.best_state is None:
            raise ValueError("No epoch has been evaluated yet, so there is no best model; train first.")
        model.load_state_dict(self.best_state)
        return model.eval()
