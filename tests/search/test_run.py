"""Opening a saved run and ``dml eval``: the trained model's metrics, reproduced from the folder alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dml.cli import main
from dml.search import evaluate_run, model_fingerprint, open_run
from dml.train.checkpoint import CheckpointError


def test_evaluate_run_reproduces_the_final_metrics_on_the_saved_split(trained, tmp_path: Path) -> None:
    run, images, final = trained
    record, written = evaluate_run(run, out=tmp_path / "eval.json")
    for key in ("recall@1", "recall@2", "map@r", "num_queries"):
        assert record["metrics"][key] == pytest.approx(final[key], abs=1e-6)
    assert record["protocol"] == "self" and record["split"] == "test" and record["epoch"] == 2
    assert json.loads(written.read_text())["checkpoint_sha256"] == record["checkpoint_sha256"]
    assert record["provenance"]["date"] and "commit" in record["provenance"]


def test_the_saved_split_is_used_even_when_the_folder_grows(trained, tmp_path: Path) -> None:
    """A new image in the folder would change a freshly drawn split; the run's split.csv keeps its test set."""
    import dml.data

    run, images, final = trained
    new = images / "class_0" / "zz_new.jpg"
    shutil.copy(images / "class_0" / "img0.jpg", new)
    try:
        fresh = dml.data.build("imagefolder", split="test", root=images, split_by="image", test_fraction=0.5)
        assert len(fresh) != final["num_queries"]  # so the check below can fail
        record, _ = evaluate_run(run, out=tmp_path / "e.json")
    finally:
        new.unlink()
    assert record["metrics"]["num_queries"] == final["num_queries"]
    assert record["metrics"]["recall@1"] == pytest.approx(final["recall@1"])


def test_fingerprint_changes_with_the_weights(trained) -> None:
    run, _, _ = trained
    saved = open_run(run)
    assert saved.fingerprint == model_fingerprint(saved.model) and saved.fingerprint.startswith("sha256:")
    first = next(saved.model.parameters())
    first.data[0].add_(1e-3)
    assert model_fingerprint(saved.model) != saved.fingerprint
    assert open_run(run / "checkpoint.pt").fingerprint == saved.fingerprint  # a checkpoint file works too


def test_a_damaged_or_missing_run_is_refused(trained, tmp_path: Path) -> None:
    run, _, _ = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_run(tmp_path / "nope")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "checkpoint.pt").write_bytes((copy / "checkpoint.pt").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="corrupt"):
        open_run(copy)


def test_dml_eval_prints_and_writes_the_metrics(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, _, final = trained
    assert main(["eval", str(run), "--out", str(tmp_path / "m.json"), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "train split, protocol self" in out and "recall@1" in out
    assert json.loads((tmp_path / "m.json").read_text())["split"] == "train"
    assert main(["eval", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dml eval: error:") and "does not exist" in err
