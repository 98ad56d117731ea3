"""The trainer's extension points: a :class:`dml.train.Method` owning the step and the test-time embedding, and
``eval.at_start`` (the untrained model's metrics as epoch 0, training unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import dml.data
from dml.eval import Evaluation, evaluate
from dml.train import Callback, Method, build_model, train
from dml.utils import seed_everything
from tests.train.test_callback import TINY, _config


class CountingConcat(Method):
    """Counts its training steps and embeds as the concatenation of the embedding with itself times two."""

    def __init__(self) -> None:
        self.steps = 0

    def training_step(self, net, loss_fn, images, labels, **kwargs):
        self.steps += 1
        return super().training_step(net, loss_fn, images, labels, **kwargs)

    def embed(self, model, data, *, batch_size, device):
        embeddings, labels = super().embed(model, data, batch_size=batch_size, device=device)
        return torch.cat([embeddings, 2 * embeddings], dim=1), labels


class Halved(Method):
    def training_step(self, net, loss_fn, images, labels, **kwargs):
        return 0.5 * super().training_step(net, loss_fn, images, labels, **kwargs)


def test_a_method_owns_the_step_and_the_embedding_without_editing_the_loop(tmp_path: Path) -> None:
    plain = train(_config(tmp_path, "plain"))
    method = CountingConcat()
    counted = train(_config(tmp_path, "counted"), method=method)
    assert method.steps > 0
    # concatenating [e, 2e] leaves cosine rankings unchanged: the same metrics, through the method's embedding
    assert counted == plain
    halved = train(_config(tmp_path, "halved"), method=Halved())
    assert halved["loss"] != plain["loss"]


def test_epoch_zero_evaluates_the_untrained_model_and_leaves_training_unchanged(tmp_path: Path) -> None:
    off = _config(tmp_path, "off")
    on = _config(tmp_path, "on")
    on.eval.at_start = True
    calls = []
    final_off = train(off)
    final_on = train(on, on_epoch_end=lambda epoch, model: calls.append(epoch) or {"seen": epoch})
    assert calls == [0, 1, 2]
    history_on = json.loads((tmp_path / "on" / "metrics.json").read_text())["epochs"]
    history_off = json.loads((tmp_path / "off" / "metrics.json").read_text())["epochs"]
    assert [r["epoch"] for r in history_on] == [0, 1, 2]
    assert [{k: v for k, v in r.items() if k != "seen"} for r in history_on[1:]] == history_off
    assert {k: v for k, v in final_on.items() if k != "seen"} == final_off

    seed_everything(on.seed, deterministic=on.deterministic)
    model = build_model(on)
    test = dml.data.build("synthetic", split=on.data.eval_split, root=on.data.root, **TINY["data"]["kwargs"])
    untrained = evaluate(model, Evaluation.of(test), ks=on.eval.ks, include=on.eval.include, seed=on.seed)
    assert {k: v for k, v in history_on[0].items() if k not in ("epoch", "loss", "lr", "seen")} == untrained


class _LossWatcher(Callback):
    """Records the hook order and the margin loss's β as on_loss_built hands it over and at every epoch end."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.loss = None
        self.beta_at_build = None

    def on_loss_built(self, loss_fn):
        self.events.append("loss")
        self.loss, self.beta_at_build = loss_fn, loss_fn.beta.detach().clone()

    def on_train_start(self, model):
        self.events.append("start")

    def on_epoch_end(self, epoch, model):
        self.events.append(f"end{epoch}")
        return {"watched_beta": float(self.loss.beta.detach().mean())}


def test_on_loss_built_hands_over_the_trained_loss_with_its_restored_state(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = _config(tmp_path, "margin")
    config.loss.name, config.loss.kwargs = "margin", {"num_classes": 4}
    config.optim.loss_lr_multiplier = 5.0
    config.train.epochs = 1
    first = _LossWatcher()
    train(config, callbacks=[first])
    assert first.events == ["loss", "start", "end1"]
    assert torch.equal(first.beta_at_build, torch.full((4,), 1.2))
    after_one = first.loss.beta.detach().clone()
    assert not torch.equal(after_one, first.beta_at_build)  # the handed-over module is the one being trained
    config.train.epochs = 2
    resumed = _LossWatcher()
    train(config, resume=True, callbacks=[resumed])
    assert resumed.events == ["loss", "start", "end2"]
    assert torch.equal(resumed.beta_at_build, after_one)  # handed over after the checkpoint was loaded
    history = json.loads((tmp_path / "margin" / "metrics.json").read_text())["epochs"]
    assert history[1]["watched_beta"] == float(resumed.loss.beta.detach().mean())
