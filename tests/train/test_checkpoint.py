"""Checkpoints cannot run code and are verified: weights-only files, a SHA-256 in the run's manifest, clear errors.

A crafted checkpoint whose unpickling would create a marker file must be refused, on ``--resume`` and in
``dml.train.load_model``, without the marker ever appearing; flipped bytes, a torch file that is not a dml
checkpoint, a missing manifest and an interrupted write each give one clear error (or, for the interrupted write,
the previous checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dml.cli import main
from dml.train import load_config, load_model, train
from dml.train.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    plain,
    save_checkpoint,
    set_rng_state,
)
from tests.train.test_resume import TINY


class _WritesMarker:
    """Unpickling this object runs ``open(marker, "w")``: what a malicious checkpoint would do with a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoint")
    (root / "data").mkdir()
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "root": str(root / "data")}}))
    train(load_config(config, [f"output_dir={root / 'run'}", "train.epochs=1", "eval.include=[recall]"]))
    return root


@pytest.fixture()
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished one-epoch run (folder ``run``, its config ``tiny.yaml``) to tamper with."""
    shutil.copytree(finished_run / "run", tmp_path / "run")
    shutil.copy(finished_run / "tiny.yaml", tmp_path / "tiny.yaml")
    (tmp_path / "data").mkdir()
    return tmp_path


def _resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    data = f"data.root={tmp_path / 'data'}"
    code = main(
        ["train", str(tmp_path / "tiny.yaml"), "--resume", "--output-dir", str(tmp_path / "run"), "--set", data]
    )
    return code, capsys.readouterr().err


def _one_line_error(err: str) -> str:
    assert err.startswith("dml train: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_checkpoint_is_plain_data_that_weights_only_loading_accepts(run: Path) -> None:
    state = torch.load(run / "run" / "checkpoint.pt", weights_only=True)
    assert state["format"] == "dml-checkpoint" and state["epoch"] == 1 and state["evaluated"] is True
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor) and isinstance(state["config"], dict)
    manifest = json.loads((run / "run" / "manifest.json").read_text())
    entry = manifest["files"]["checkpoint.pt"]
    assert entry["bytes"] == (run / "run" / "checkpoint.pt").stat().st_size and entry["epoch"] == 1
    assert load_model(run / "run").training is False


@pytest.mark.parametrize("manifest", ["recorded", "stale"])
def test_malicious_checkpoint_never_runs(run: Path, capsys: pytest.CaptureFixture, manifest: str) -> None:
    """With its checksum recorded (weights-only loading refuses it) or not (the checksum refuses it first)."""
    marker = run / "marker"
    path = run / "run" / "checkpoint.pt"
    state = {**load_checkpoint(path), "payload": _WritesMarker(marker)}
    if manifest == "recorded":
        save_checkpoint(state, path)
    else:
        torch.save(state, path)
    expected = "Refusing to load" if manifest == "recorded" else "is corrupt: its SHA-256"
    with pytest.raises(CheckpointError, match=expected) as info:
        load_model(run / "run")
    assert str(run / "run" / "checkpoint.pt") in str(info.value)
    code, err = _resume(run, capsys)
    assert code == 1 and expected in _one_line_error(err)
    assert not marker.exists()


def test_flipped_bytes_are_a_clear_error_naming_the_file(run: Path, capsys: pytest.CaptureFixture) -> None:
    path = run / "run" / "checkpoint.pt"
    before = path.read_bytes()
    data = bytearray(before)
    middle = len(data) // 2
    data[middle] ^= 0xFF
    data[middle + 1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"The checkpoint {path} is corrupt"):
        load_model(run / "run")
    code, err = _resume(run, capsys)
    assert code == 1 and f"The checkpoint {path} is corrupt" in _one_line_error(err)
    assert path.read_bytes() == bytes(data)  # the refused resume wrote nothing


def test_a_torch_file_that_is_not_a_dml_checkpoint(run: Path, capsys: pytest.CaptureFixture) -> None:
    path = run / "run" / "checkpoint.pt"
    save_checkpoint({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=r"is a torch file but not a dml checkpoint .*\['weight'\]"):
        load_model(run / "run")
    code, err = _resume(run, capsys)
    assert code == 1 and "not a dml checkpoint" in _one_line_error(err)
    garbage = b"not a zip file"
    path.write_bytes(garbage)
    manifest = run / "run" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["files"]["checkpoint.pt"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    manifest.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="Could not read the checkpoint .* it is not a torch file"):
        load_checkpoint(path)
    manifest.write_text(json.dumps({**record, "files": {"other.pt": record["files"]["checkpoint.pt"]}}))
    with pytest.raises(CheckpointError, match="records no SHA-256 for it"):
        load_checkpoint(path)


def test_missing_or_unreadable_manifest(run: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = run / "run" / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is unreadable"):
        load_model(run / "run")
    manifest.unlink()
    with pytest.raises(CheckpointError, match="there is no manifest.json with its SHA-256"):
        load_model(run / "run")
    code, err = _resume(run, capsys)
    assert code == 1 and "Cannot verify the checkpoint" in _one_line_error(err)


def test_a_write_killed_between_manifest_and_rename_leaves_a_verified_checkpoint(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = run / "run" / "checkpoint.pt"
    before = path.read_bytes()
    state = load_checkpoint(path)

    def die(*args, **kwargs):  # the manifest is written, the new file is not yet in place
        raise KeyboardInterrupt

    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: die() if Path(b) == path else real_replace(a, b))
    for epoch in (2, 3):  # twice: the second manifest must still vouch for the file on disk
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint({**state, "epoch": epoch}, path)
        assert path.read_bytes() == before and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        assert load_checkpoint(path)["epoch"] == 1  # the manifest still vouches for the previous file
    monkeypatch.setattr(os, "replace", real_replace)
    save_checkpoint({**state, "epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 2


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian is part of NumPy's state
    save_checkpoint({"rng": get_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == expected


def test_plain_converts_numpy_and_refuses_other_objects() -> None:
    assert plain({"a": np.float64(0.5), "b": [np.int64(2), np.arange(2)]}, "history") == {"a": 0.5, "b": [2, [0, 1]]}
    assert type(plain({"a": np.float32(0.5)}, "history")["a"]) is float
    with pytest.raises(TypeError, match=r"Cannot save history\[0\].x \(a object\)"):
        plain([{"x": object()}], "history")


def test_a_newer_or_incomplete_dml_checkpoint_is_named(run: Path) -> None:
    path = run / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    save_checkpoint({**state, "version": 99}, path)
    with pytest.raises(CheckpointError, match="format version 99, newer than this dml's 2; upgrade dml"):
        load_checkpoint(path)
    save_checkpoint({k: v for k, v in state.items() if k not in ("optimizer", "rng")}, path)
    with pytest.raises(CheckpointError, match=r"incomplete dml checkpoint \(no \['optimizer', 'rng'\]\)"):
        load_model(run / "run")
