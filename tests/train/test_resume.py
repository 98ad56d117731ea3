"""Exact resumption: a run SIGKILLed after an epoch and resumed ends with exactly the metrics of an uninterrupted run.

The runs go through the command line in subprocesses (``python -m dml.cli train ...``) so the kill is a real
SIGKILL of a real process; the killed run trains with :class:`tests.train.faults.KillAfterEpoch`, which fires right
after that epoch's checkpoint is written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dml.train import ConfigError, load_config, train
from dml.train.callbacks import Callback
from tests.train import faults

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "seed": 11,
    "deterministic": False,
    "device": "cpu",
    "data": {
        "name": "synthetic",
        "kwargs": {"num_classes": 12, "images_per_class": 8, "modes_per_class": 2, "image_size": 16, "seed": 3},
        "sampler": {"variant": "filled", "p": 3, "k": 4},
    },
    "model": {"backbone": "small_cnn", "embedding_dim": 16, "pooling": "gem", "backbone_kwargs": {"widths": [8, 16]}},
    "loss": {"name": "triplet", "kwargs": {"margin": 0.2}},
    "optim": {"name": "adam", "lr": 0.01, "weight_decay": 0.0001, "milestones": [2], "gamma": 0.5},
    "train": {"epochs": 3, "log_every": 1},
    "eval": {"every": 1, "ks": [1, 2, 4]},
}


def _cli(config: Path, out: Path, *extra: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    argv = ["train", str(config), "--output-dir", str(out), *extra]
    command = [sys.executable, "-m", "dml.cli", *argv]
    if kill_after is not None:  # the same command line, with the fault callback installed first
        main = f"import sys, dml.cli; sys.exit(dml.cli.main({argv!r}))"
        command = [sys.executable, "-c", faults.script(kill_after) + main]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_killed_and_resumed_run_matches_uninterrupted_run(tiny: Path, tmp_path: Path) -> None:
    kill_after = 1  # the resumed part crosses the lr milestone, so the scheduler state must have been restored
    full = _cli(tiny, tmp_path / "full")
    assert full.returncode == 0, full.stderr

    killed = _cli(tiny, tmp_path / "killed", kill_after=kill_after)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    partial = _metrics(tmp_path / "killed")
    assert [e["epoch"] for e in partial["epochs"]] == list(range(1, kill_after + 1)) and partial["final"] is None
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == kill_after
    assert not [p.name for p in (tmp_path / "killed").iterdir() if p.name.endswith(".tmp")]

    resumed = _cli(tiny, tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {tmp_path / 'killed'} after epoch {kill_after}" in resumed.stdout

    expected = _metrics(tmp_path / "full")
    assert len(expected["epochs"]) == 3 and expected["final"]["epoch"] == 3
    assert _metrics(tmp_path / "killed") == expected  # exact equality of every float
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    info = json.loads((tmp_path / "killed" / "run_info.json").read_text())
    assert info["resumed_after_epoch"] == [kill_after] and info["seeds"]["seed"] == TINY["seed"]


def test_outputs_are_complete_and_config_round_trips(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = load_config(tiny, [f"output_dir={out}", "train.epochs=2", "eval.every=2"])
    final = train(config)
    assert {p.name for p in out.iterdir()} == {
        "config.yaml",
        "run_info.json",
        "metrics.json",
        "checkpoint.pt",
        "manifest.json",
    }
    assert load_config(out / "config.yaml") == config
    metrics = _metrics(out)
    assert "recall@1" not in metrics["epochs"][0] and "recall@1" in metrics["epochs"][1]
    assert metrics["final"] == final and 0.0 <= final["recall@1"] <= 1.0
    assert [e["lr"] for e in metrics["epochs"]] == [0.01, 0.01]  # milestone 2 changes the lr after epoch 2
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "epoch", "rng", "history", "config"}
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert state["scheduler"]["last_epoch"] == 2 and state["history"] == metrics["epochs"]
    info = json.loads((out / "run_info.json").read_text())
    assert info["seeds"]["seed"] == TINY["seed"] and info["world_size"] == 1 and info["device"] == "cpu"


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"]))
    before = (out / "checkpoint.pt").read_bytes()

    real_save = torch.save

    def crash_mid_write(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        train(load_config(tiny, [f"output_dir={out}", "train.epochs=2", "eval.include=[recall]"]), resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_resume_errors_are_explicit(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Cannot resume.*checkpoint.pt.*without --resume"):
        train(load_config(tiny, [f"output_dir={tmp_path / 'empty'}"]), resume=True)
    out = tmp_path / "run"
    train(load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"]))
    with pytest.raises(ValueError, match=r"optim.lr: 0.01 -> 0.02"):
        train(load_config(tiny, [f"output_dir={out}", "optim.lr=0.02", "eval.include=[recall]"]), resume=True)


def test_resuming_a_finished_run_changes_nothing(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = load_config(tiny, [f"output_dir={out}", "train.epochs=1", "eval.include=[recall]"])
    final = train(config)
    before = _metrics(out)
    assert train(config, resume=True) == final
    assert _metrics(out) == before


def test_callbacks_see_every_hook_in_order(tiny: Path, tmp_path: Path) -> None:
    """The hooks the fault injection (and the next methods) rely on: order, epochs, the checkpoint path."""
    calls: list[tuple] = []

    class Record(Callback):
        def on_train_start(self, model):
            calls.append(("start",))

        def on_epoch_start(self, epoch, model):
            calls.append(("epoch_start", epoch))

        def on_step_end(self, epoch, step, loss):
            calls.append(("step", epoch, step))

        def on_epoch_end(self, epoch, model):
            calls.append(("epoch_end", epoch))

        def on_checkpoint(self, epoch, path):
            calls.append(("checkpoint", epoch, path.name, path.is_file()))

    train(
        load_config(tiny, [f"output_dir={tmp_path / 'run'}", "train.epochs=2", "eval.include=[recall]"]),
        callbacks=[Record()],
    )
    steps = [c for c in calls if c[0] == "step"]
    assert calls[0] == ("start",) and steps and {c[1] for c in steps} == {1, 2}
    first = [c for c in calls if c[0] != "step" and c[1:2] == (1,)]
    assert first == [("epoch_start", 1), ("epoch_end", 1), ("checkpoint", 1, "checkpoint.pt", True)]
    assert calls[-1] == ("checkpoint", 2, "checkpoint.pt", True)


def test_bad_config_is_rejected_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'triplet'"):
        train(load_config(None, [f"output_dir={tmp_path}", "loss.name=triplett"]))
    assert not any(tmp_path.iterdir())
