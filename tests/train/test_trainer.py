"""Faults around a run's folder: an evaluation that fails after a trained epoch, a resume asking for fewer epochs than
the checkpoint holds, a fresh start that fails, temporary files of a killed write, a missing image file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dml.train.trainer
from dml.data.images import MissingImageError
from dml.train import Callback, from_dict, load_config, train
from dml.train.checkpoint import load_checkpoint
from tests.fixtures.benchmarks import make_cub


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_evaluation_failure_keeps_the_trained_epoch_and_resume_evaluates_it(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = ["train.epochs=3", "eval.include=[recall]"]
    expected = train(load_config(tiny, [f"output_dir={tmp_path / 'full'}", *overrides]))

    real_evaluate, calls = dml.train.trainer._evaluate, []

    def fails_at_epoch_2(run):
        calls.append(run.history[-1]["epoch"])
        if len(calls) == 2:
            raise OSError("image file 12.jpg is truncated or corrupt")
        return real_evaluate(run)

    monkeypatch.setattr(dml.train.trainer, "_evaluate", fails_at_epoch_2)
    out = tmp_path / "broken"
    with pytest.raises(OSError, match="truncated"):
        train(load_config(tiny, [f"output_dir={out}", *overrides]))
    state = load_checkpoint(out / "checkpoint.pt")
    assert calls == [1, 2] and state["epoch"] == 2 and state["evaluated"] is False  # epoch 2's training is kept
    assert "recall@1" not in state["history"][-1] and "recall@1" in state["history"][0]

    monkeypatch.setattr(dml.train.trainer, "_evaluate", real_evaluate)
    resumed = train(load_config(tiny, [f"output_dir={out}", *overrides]), resume=True)
    assert resumed == expected  # epoch 2 evaluated on resume, then epoch 3 trained: exactly the uninterrupted run
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (tmp_path / "full" / "metrics.json").read_text()
    )


def test_resume_with_fewer_epochs_than_the_checkpoint_is_refused_and_writes_nothing(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=2", "eval.include=[recall]"]))
    before = _files(out)
    with pytest.raises(ValueError, match=r"after epoch 2, but train.epochs is 1; resume with --set train.epochs=2"):
        train(load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"]), resume=True)
    assert _files(out) == before  # config.yaml still says 2 epochs, as metrics.json does


def test_a_fresh_run_that_fails_leaves_the_folder_as_it_was(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"]))
    before = _files(out)

    class Fails(Callback):
        def on_step_end(self, epoch, step, loss):
            raise FloatingPointError("the loss became nan")

    with pytest.raises(FloatingPointError):
        train(load_config(tiny, [f"output_dir={out}", "optim.lr=0.5", "eval.include=[recall]"]), callbacks=[Fails()])
    assert _files(out) == before
    empty = tmp_path / "new"
    with pytest.raises(FloatingPointError):
        train(load_config(tiny, [f"output_dir={empty}", "eval.include=[recall]"]), callbacks=[Fails()])
    assert not empty.exists()


def test_a_fresh_run_replaces_every_file_of_the_earlier_run(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=2", "eval.include=[recall]"]))
    config = load_config(tiny, [f"output_dir={out}", "train.epochs=1", "optim.lr=0.02", "eval.include=[recall]"])
    train(config)
    assert load_config(out / "config.yaml") == config
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1]


def test_temporary_files_of_a_killed_write_are_removed_at_the_next_start(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"]))
    orphans = [out / ".checkpoint.pt.k1ll3d.tmp", out / ".metrics.json.x2.tmp", out / ".manifest.json.y.tmp"]
    for path in orphans:
        path.write_bytes(b"\0" * 1000)
    (out / "notes.tmp").write_text("a user's file")
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=2", "eval.include=[recall]"]), resume=True)
    assert not any(path.exists() for path in orphans) and (out / "notes.tmp").exists()


def test_a_missing_test_image_is_reported_before_training(tmp_path: Path) -> None:
    make_cub(tmp_path / "cub200")
    base = tmp_path / "cub200" / "CUB_200_2011"
    images = (base / "images.txt").read_text().split()
    test_image = next(name for name in images[1::2] if int(name.split(".")[0]) > 100)  # classes 101-200: test
    (base / "images" / test_image).unlink()
    config = from_dict(
        {
            "device": "cpu",
            "output_dir": str(tmp_path / "run"),
            "data": {
                "name": "cub200",
                "root": str(tmp_path),
                "pipeline": "jpeg",
                "sampler": {"p": 3, "k": 3},
                "augment": {"size": 32, "test_resize": 36},
            },
            "model": {"backbone": "small_cnn", "embedding_dim": 8, "backbone_kwargs": {"widths": [8, 8]}},
            "train": {"epochs": 1},
        }
    )
    steps = []

    class Steps(Callback):
        def on_step_end(self, epoch, step, loss):
            steps.append(step)

    with pytest.raises(
        MissingImageError,
        match=r"Image file .* is missing. \(1 of the \d+ image files of the 'test' split are missing; "
        r"`dml data check cub200` lists them",
    ):
        train(config, callbacks=[Steps()])
    assert steps == [] and not (tmp_path / "run").exists()


def test_checkpoint_history_is_plain_even_when_a_callback_returns_numpy(tiny: Path, tmp_path: Path) -> None:
    import numpy as np

    out = tmp_path / "run"
    config = load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"])
    train(config, on_epoch_end=lambda epoch, model: {"probe": np.float64(0.25), "hist": np.arange(3)})
    history = torch.load(out / "checkpoint.pt", weights_only=True)["history"]
    assert history[0]["probe"] == 0.25 and history[0]["hist"] == [0, 1, 2]
