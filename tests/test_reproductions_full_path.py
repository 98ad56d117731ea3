"""The ``full`` profile of both reproduction notebooks, end to end on the CPU.

The real recipe needs a GPU, ImageNet weights and the real CUB; none can be reached here. This test runs the same
notebook cells on a CUB fixture in the official format (``tests/fixtures/benchmarks.py``), with the recipe shrunk
through the notebooks' ``config_overrides`` parameter (a small CNN, 32-pixel crops of a 40-pixel cache, two epochs,
``device=cpu``), so that every line of the full path runs: the cached pipeline, the per-epoch diagnostics, the
recording of ``results/<paper>/<dataset>.json`` and the results table that reads it back.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.benchmarks import make_cub
from tests.pages import REPO

SHRINK = ["device=cpu", "model.backbone=small_cnn", "model.pretrained=false", "model.embedding_dim=8",
          "model.backbone_kwargs={widths: [4, 8]}", "train.epochs=2", "optim.milestones=[1]", "eval.every=1",
          "data.cache_size=40", "data.cache_workers=0", "data.augment.size=32", "data.augment.test_resize=36",
          "data.augment.normalize=cache"]
CASES = {
    # 32-image batches: the EPHN group-size sweep needs batch / 16 >= 2 classes.
    "sct": ("notebooks/reproduce_sct.md", ["HN", "SHN", "SCT"], ["data.sampler.p=16"]),
    "ephn": ("notebooks/reproduce_ephn.md", ["EPHN", "EPSHN", "NCA, all positives", "triplet, batch-all"],
             ["data.sampler.p=4", "data.sampler.k=8"]),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_cub(root / "cub200", classes=tuple(range(1, 21)) + tuple(range(101, 121)), per_class=4)
    return root


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("paper", sorted(CASES))
def test_the_full_profile_runs_records_and_reads_back_its_results(paper: str, data_root: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import jupytext
    import papermill

    page, methods, sampler = CASES[paper]
    monkeypatch.setenv("DML_DATA", str(data_root))
    results_dir, runs = tmp_path / "results", tmp_path / "runs"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        jupytext.read(REPO / page), str(executed),
        parameters={"profile": "full", "dataset": "cub200", "seeds": [0], "output_dir": str(runs),
                    "results_dir": str(results_dir), "config_overrides": SHRINK + sampler},
        kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False, execution_timeout=600)

    record = json.loads((results_dir / paper / "cub200.json").read_text())
    assert record["paper"] == paper and record["dataset"] == "cub200" and record["profile"] == "full"
    assert record["run_info"]["seeds"] == [0] and record["run_info"]["commit"]
    assert sorted(record["summary"]) == sorted(methods)
    for method in methods:
        folder = next(runs.rglob(f"{method.replace(' ', '_').replace(',', '_')}/seed0"))
        final = json.loads((folder / "metrics.json").read_text())["final"]
        assert final["epoch"] == 2
        assert record["summary"][method]["recall@1"]["values"] == [final["recall@1"]]
        assert record["configs"][method]["model"]["backbone"] == "small_cnn"
    # the results table read the record back: its row names this run's commit
    text = executed.read_text()
    assert f"commit {record['run_info']['commit'][:10]}" in text
