"""dml.reproduce: experiment folders, runs over methods and seeds, summaries and recorded full runs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dml.reproduce import (
    RunResult,
    comparison_table,
    epoch_curve,
    load_experiment,
    load_recorded,
    published_tables,
    run_methods,
    save_full_run,
    summarize,
)
from dml.train import ConfigError, load_config
from tests.pages import REPO
from tests.train import faults

TINY = {
    "seed": 0,
    "deterministic": False,
    "device": "cpu",
    "output_dir": "runs/unused",
    "data": {
        "name": "synthetic",
        "kwargs": {"num_classes": 8, "images_per_class": 6, "image_size": 16, "seed": 0},
        "sampler": {"variant": "filled", "p": 2, "k": 2},
    },
    "model": {
        "backbone": "small_cnn",
        "embedding_dim": 8,
        "pooling": "avg",
        "backbone_kwargs": {"widths": [4, 8], "norm": "none"},
    },
    "loss": {"name": "sct"},
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "milestones": []},
    "train": {"epochs": 3, "log_every": 1000},
    "eval": {"every": 1, "ks": [1, 2], "include": ["recall"]},
}
SPEC = {
    "paper": "toy",
    "title": "A toy reproduction",
    "methods": {"HN": ["loss.kwargs.mode=hn"], "SCT": []},
    "dataset_methods": {"bench": {"HN": ["optim.lr=0.002"]}},
    "profiles": {
        "smoke": {"dataset": "synthetic", "seeds": [0, 1], "overrides": ["train.epochs=2", "data.kwargs.seed={seed}"]},
        "full": {"seeds": [0, 1, 2], "device": "cuda"},
    },
}
PUBLISHED = {
    "tables": [
        {
            "title": "Paper",
            "dataset": "bench",
            "source": "paper",
            "columns": ["R@1", "R@2"],
            "rows": {"SCT": [57.7, 69.8], "HN": ["collapse", "collapse"]},
        },
        {
            "title": "Other",
            "dataset": "elsewhere",
            "source": "released code",
            "columns": ["R@1"],
            "rows": {"SCT": [1.0]},
        },
    ]
}


def write_experiment(folder: Path, spec: dict = SPEC, published: dict | None = PUBLISHED) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    (folder / "synthetic.yaml").write_text(yaml.safe_dump(TINY))
    (folder / "bench.yaml").write_text(yaml.safe_dump(TINY))
    if published is not None:
        (folder / "published.yaml").write_text(yaml.safe_dump(published, sort_keys=False))
    return folder


@pytest.fixture
def experiment(tmp_path: Path):
    return load_experiment(write_experiment(tmp_path / "toy"))


def test_overrides_apply_profile_then_method_then_dataset_method_then_caller(experiment) -> None:
    assert experiment.datasets() == ["bench", "synthetic"]
    assert experiment.real_datasets() == ["bench"]
    assert experiment.overrides("HN", dataset="bench", profile="full") == ["loss.kwargs.mode=hn", "optim.lr=0.002"]
    config = experiment.config(
        "HN", dataset="synthetic", profile="smoke", seed=3, output_dir="out/x", overrides=["train.epochs=5"]
    )
    assert config.loss.kwargs == {"mode": "hn"} and config.optim.lr == 0.1  # the lr override is bench-only
    assert config.train.epochs == 5  # caller after profile
    assert config.seed == 3 and config.data.kwargs["seed"] == 3  # "{seed}" filled in
    assert config.output_dir == "out/x"
    assert experiment.config("HN", dataset="bench", profile="full", seed=0, output_dir="o").optim.lr == 0.002


def test_the_command_line_builds_the_same_config(experiment) -> None:
    kwargs = dict(dataset="synthetic", profile="smoke", seed=1, output_dir="runs/a b")
    line = experiment.command("HN", overrides=["optim.lr=0.05"], **kwargs)
    words = shlex.split(line)
    assert words[:2] == ["dml", "train"]
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert words[words.index("--output-dir") + 1] == "runs/a b"
    from_line = load_config(words[2], overrides + ["output_dir=runs/a b"])
    assert from_line == experiment.config("HN", overrides=["optim.lr=0.05"], **kwargs)


def test_dataset_choice_is_checked(experiment) -> None:
    assert experiment.dataset_for("smoke") == "synthetic"
    assert experiment.dataset_for("full", "bench") == "bench"
    with pytest.raises(ValueError, match="built-in dataset 'synthetic'"):
        experiment.dataset_for("smoke", "bench")
    with pytest.raises(ValueError, match=r"needs a real benchmark.*\['bench'\]"):
        experiment.dataset_for("full", None)
    with pytest.raises(ValueError, match="not one of"):
        experiment.profile("huge")
    with pytest.raises(ValueError, match="Unknown method 'XX'"):
        experiment.overrides("XX", dataset="bench", profile="full")
    with pytest.raises(ConfigError, match="no config for dataset 'cub200'"):
        experiment.config_path("cub200")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({**SPEC, "colour": 1}, "unknown keys: \\['colour'\\]"),
        ({"paper": "x"}, "needs 'paper' and 'methods'"),
        ({**SPEC, "dataset_methods": {"bench": {"SHN": []}}}, "unknown methods \\['SHN'\\]"),
        ({**SPEC, "profiles": {"full": {"device": "tpu"}}}, "device must be one of"),
        ({**SPEC, "profiles": {"full": {"epochs": 3}}}, "unknown keys \\['epochs'\\]"),
    ],
)
def test_bad_experiment_files_fail_with_the_key(tmp_path: Path, spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_experiment(tmp_path / "bad", spec))


def test_a_missing_folder_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="experiment.yaml"):
        load_experiment(tmp_path / "nowhere")


def test_bare_names_find_the_repository_notebooks() -> None:
    folders = [p.parent.name for p in (REPO / "notebooks").glob("*/experiment.yaml")]
    for name in folders:
        assert load_experiment(name).folder == (REPO / "notebooks" / name).resolve()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_gpu_profile_refuses_to_run_on_a_cpu(experiment, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*profile='medium'"):
        run_methods(
            experiment,
            ["SCT"],
            dataset="bench",
            profile="full",
            seeds=[0],
            output_dir=tmp_path / "runs",
            overrides=["device=cuda"],
        )
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_runs_train_every_method_and_seed_then_reuse_finished_runs(experiment, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    calls = []

    def callback(config):
        calls.append((config.loss.kwargs.get("mode"), config.seed))
        return lambda epoch, model: {"probe": float(epoch)}

    out = tmp_path / "runs"
    runs = run_methods(
        experiment,
        ["HN", "SCT"],
        dataset="synthetic",
        profile="smoke",
        seeds=[0, 1],
        output_dir=out,
        callback=callback,
        log=None,
    )
    assert calls == [("hn", 0), ("hn", 1), (None, 0), (None, 1)]
    assert [r.seed for r in runs["HN"]] == [0, 1]
    for method in ("HN", "SCT"):
        for result in runs[method]:
            saved = json.loads((out / method / f"seed{result.seed}" / "metrics.json").read_text())
            assert result.history == saved["epochs"] and len(result.history) == 2
            assert result.final["recall@1"] == saved["final"]["recall@1"]
            assert [r["probe"] for r in result.history] == [1.0, 2.0]
            assert result.config["seed"] == result.seed and not result.reused
    checkpoint = out / "HN" / "seed0" / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    again = run_methods(
        experiment, ["HN"], dataset="synthetic", profile="smoke", seeds=[0], output_dir=out, callback=callback, log=None
    )
    assert again["HN"][0].reused and checkpoint.stat().st_mtime_ns == stamp and len(calls) == 4
    assert again["HN"][0].final == runs["HN"][0].final
    # a different config in the same folder is trained afresh, not reused
    changed = run_methods(
        experiment,
        ["HN"],
        dataset="synthetic",
        profile="smoke",
        seeds=[0],
        output_dir=out,
        overrides=["optim.lr=0.05"],
        log=None,
    )
    assert not changed["HN"][0].reused and checkpoint.stat().st_mtime_ns != stamp


def test_an_interrupted_run_is_resumed_to_the_uninterrupted_numbers(experiment, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    script = (
        faults.script(1) + f"import torch; torch.set_num_threads(1)\n"
        f"from dml.reproduce import load_experiment, run_methods\n"
        f"e = load_experiment({str(experiment.folder)!r})\n"
        f"run_methods(e, ['SCT'], dataset='synthetic', profile='smoke', seeds=[0], output_dir={str(out)!r}, "
        f"overrides=['train.epochs=3'], log=None)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert killed.returncode != 0
    assert json.loads((out / "SCT" / "seed0" / "metrics.json").read_text())["final"] is None
    torch.set_num_threads(1)
    resumed = run_methods(
        experiment,
        ["SCT"],
        dataset="synthetic",
        profile="smoke",
        seeds=[0],
        output_dir=out,
        overrides=["train.epochs=3"],
        log=None,
    )["SCT"][0]
    whole = run_methods(
        experiment,
        ["SCT"],
        dataset="synthetic",
        profile="smoke",
        seeds=[0],
        output_dir=tmp_path / "whole",
        overrides=["train.epochs=3"],
        log=None,
    )["SCT"][0]
    assert not resumed.reused and len(resumed.history) == 3
    assert [r["recall@1"] for r in resumed.history] == [r["recall@1"] for r in whole.history]
    assert json.loads((out / "SCT" / "seed0" / "run_info.json").read_text())["resumed_after_epoch"] == [1]


def fake_run(method: str, seed: int, values: list[float | None]) -> RunResult:
    history = [{"epoch": e + 1, "recall@1": v} for e, v in enumerate(values)]
    return RunResult(
        method, seed, {"seed": seed, "output_dir": "x", "optim": {"lr": 0.1}}, history, history[-1], Path("x")
    )


def test_summaries_are_population_mean_and_std_at_the_last_or_a_given_epoch() -> None:
    runs = {"A": [fake_run("A", 0, [0.1, 0.5]), fake_run("A", 1, [0.3, 0.8])]}
    last = summarize(runs, ["recall@1"])["A"]["recall@1"]
    assert last["values"] == [0.5, 0.8] and last["seeds"] == [0, 1]
    assert last["mean"] == pytest.approx(0.65) and last["std"] == pytest.approx(0.15)  # ddof = 0
    first = summarize(runs, ["recall@1"], epoch=1)["A"]["recall@1"]
    assert first["mean"] == pytest.approx(0.2)
    with pytest.raises(KeyError, match="no 'map@r'"):
        summarize(runs, ["map@r"])
    with pytest.raises(KeyError, match="no epoch 7"):
        summarize(runs, ["recall@1"], epoch=7)


def test_epoch_curves_average_over_seeds_and_skip_missing_values() -> None:
    runs = [fake_run("A", 0, [0.2, None, 0.6]), fake_run("A", 1, [0.4, 0.5, 0.8])]
    epochs, mean, std = epoch_curve(runs, "recall@1")
    assert epochs.tolist() == [1, 2, 3]
    np.testing.assert_allclose(mean, [0.3, 0.5, 0.7])
    np.testing.assert_allclose(std, [0.1, 0.0, 0.1])
    with pytest.raises(KeyError, match="'loss' is not in the history"):
        epoch_curve(runs, "loss")


def test_a_full_run_is_recorded_with_provenance_and_read_back(experiment, tmp_path: Path) -> None:
    runs = {"SCT": [fake_run("SCT", 0, [0.5]), fake_run("SCT", 3, [0.7])]}
    path = tmp_path / "results" / "toy" / "bench.json"
    record = save_full_run(experiment, "bench", runs, metrics=["recall@1"], path=path)
    saved = json.loads(path.read_text())
    assert saved == record
    assert saved["summary"]["SCT"]["recall@1"]["mean"] == pytest.approx(0.6)
    assert saved["run_info"]["seeds"] == [0, 3] and "date" in saved["run_info"]
    assert "commit" in saved["run_info"] and "cuda" in saved["run_info"]["hardware"]
    assert saved["configs"]["SCT"] == {"optim": {"lr": 0.1}}  # seed and folder dropped
    assert experiment.results_path("bench", tmp_path / "results") == path
    assert load_recorded(experiment, "bench", tmp_path / "results") == saved
    assert load_recorded(experiment, "synthetic", tmp_path / "results") is None
    assert not list(path.parent.glob("*.tmp*"))  # atomic: no leftovers


def test_published_tables_and_the_comparison_table(experiment) -> None:
    tables = published_tables(experiment, "bench")
    assert [t["title"] for t in tables] == ["Paper"] and len(published_tables(experiment)) == 2
    recorded = {
        "summary": {"SCT": {"recall@1": {"mean": 0.5771, "std": 0.0075}}},
        "run_info": {
            "date": "2026-11-23T10:00:00+00:00",
            "commit": "abc",
            "seeds": [0, 1],
            "hardware": {"gpus": ["NVIDIA H100"]},
        },
    }
    table = comparison_table(experiment, "bench", recorded=recorded, columns={"R@1": "recall@1", "R@2": "recall@2"})
    assert table["method"].tolist() == ["SCT", "HN", "SCT"]
    assert table["R@1"].tolist() == [57.7, "collapse", "57.71 ± 0.75"]
    assert table["R@2"].tolist()[-1] == "–"
    assert "NVIDIA H100" in table["source"].iloc[-1] and "2026-11-23" in table["source"].iloc[-1]
    assert len(comparison_table(experiment, "bench", columns={"R@1": "recall@1"})) == 2


def test_a_malformed_published_table_is_refused(tmp_path: Path) -> None:
    bad = {
        "tables": [{"title": "T", "dataset": "bench", "source": "s", "columns": ["R@1", "R@2"], "rows": {"SCT": [1.0]}}]
    }
    experiment = load_experiment(write_experiment(tmp_path / "toy", published=bad))
    with pytest.raises(ConfigError, match="row 'SCT' has 1 values for 2 columns"):
        published_tables(experiment)
    del bad["tables"][0]["source"]
    (tmp_path / "toy" / "published.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"lacks \['source'\]"):
        published_tables(experiment)


def test_tables_without_a_requested_column_are_left_out(experiment) -> None:
    table = comparison_table(experiment, "bench", columns={"chain R@1": "chain@1"})
    assert table.empty
    table = comparison_table(experiment, "bench", columns={"R@2": "recall@2", "R@4": "recall@4"})
    assert table["R@2"].tolist() == [69.8, "collapse"] and table["R@4"].tolist() == ["–", "–"]


def test_the_default_folders_are_found_from_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    from dml.reproduce import find_root

    checkout = tmp_path / "checkout"
    write_experiment(checkout / "notebooks" / "toy")
    (checkout / "notebooks" / "deep").mkdir()
    monkeypatch.chdir(checkout / "notebooks" / "deep")
    experiment = load_experiment("toy")
    assert experiment.folder == (checkout / "notebooks" / "toy").resolve()
    assert experiment.results_path("synthetic") == checkout.resolve() / "results" / "toy" / "synthetic.json"
    assert (
        experiment.command("SCT", dataset="synthetic", profile="smoke", seed=0, output_dir="o").split()[2]
        == "notebooks/toy/synthetic.yaml"
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    with pytest.raises(FileNotFoundError, match="pass the results folder"):
        experiment.results_path("synthetic")
    assert experiment.results_path("synthetic", root=outside) == outside / "toy" / "synthetic.json"
    assert find_root(checkout / "notebooks" / "toy") == checkout.resolve()


def test_summary_tables_show_no_spread_for_one_seed() -> None:
    from dml.reproduce import summary_table

    one = summary_table(summarize({"m": [fake_run("m", 0, [0.5, 0.25])]}, ["recall@1"]))
    two = summary_table(summarize({"m": [fake_run("m", 0, [0.5, 0.25]), fake_run("m", 1, [0.5, 0.75])]}, ["recall@1"]))
    assert one.loc["m", "recall@1"] == "0.250" and two.loc["m", "recall@1"] == "0.500 ± 0.250"


def test_page_helpers_chance_recall_epoch_zero_curves_and_run_folders(experiment, tmp_path: Path) -> None:
    from dml.reproduce import chance_recall, curve_from_epoch_zero, quiet, run_folder

    assert chance_recall([0, 0, 1, 1]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="two labels"):
        chance_recall([0])
    runs = [fake_run("m", 0, [0.5, 0.25]), fake_run("m", 1, [0.5, 0.75])]
    epochs, mean, std = curve_from_epoch_zero(runs, "recall@1", {0: {"recall@1": 0.1}, 1: {"recall@1": 0.3}})
    assert list(epochs) == [0, 1, 2] and mean[0] == pytest.approx(0.2) and std[0] == pytest.approx(0.1)
    assert run_folder(experiment, output_dir=tmp_path / "o", dataset="d", builtin=False) == tmp_path / "o" / "d"
    assert run_folder(experiment, output_dir="o", dataset="d", builtin=False, root=tmp_path) == tmp_path / "o" / "d"
    assert run_folder(experiment, output_dir="o", dataset="d", builtin=True).parts[-2:] == ("o", "d")
    with quiet():
        print("hidden")


def test_epoch_zero_is_the_network_train_starts_from(experiment, tmp_path: Path) -> None:
    from dml.reproduce import epoch_zero, initial_model, train_diagnostics_callback

    config = experiment.config(
        "SCT", dataset="synthetic", profile="smoke", seed=3, output_dir=tmp_path / "run", overrides=["train.epochs=1"]
    )
    diagnostics = {"pairs": "all", "histograms": False, "spectrum_ks": (), "density": False}
    record = epoch_zero(config, diagnostics=diagnostics)
    assert record["epoch"] == 0 and "recall@1" in record and "train_hard_ratio" in record
    again = epoch_zero(config)
    assert again["recall@1"] == record["recall@1"] and "train_hard_ratio" not in again
    hook = train_diagnostics_callback(config, diagnostics=diagnostics)
    assert "train_mean_similarity" in hook(1, initial_model(config))
