"""The ``dml`` command line: help, exit codes, error messages, and the example configs actually running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dml.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke_synthetic.yaml"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "data" in out
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--set" in out and "--resume" in out and "--output-dir" in out


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dml.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "usage: dml" in result.stdout


@pytest.mark.parametrize("argv", [["train"], ["frobnicate"], ["train", str(SMOKE), "--bogus"]])
def test_argparse_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    assert "usage: dml" in capsys.readouterr().err
    assert main(["data"]) == 2
    assert "list" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "nope.yaml"], "does not exist"),
        (["train", str(SMOKE), "--set", "optim.lrr=0.1"], "Did you mean 'optim.lr'"),
        (["train", str(SMOKE), "--set", "optim.lr"], "has no '='"),
        (["train", str(SMOKE), "--set", "train.epochs=two"], "'train.epochs' must be an integer"),
        (["train", str(SMOKE), "--set", "loss.name=tripplet"], "Did you mean 'triplet'"),
        (
            ["train", str(SMOKE), "--set", "data.kwargs.num_clases=4"],
            "'data.kwargs': Dataset 'synthetic' got unexpected keyword argument(s) 'num_clases'. "
            "Closest: 'num_clases' -> 'num_classes'. Accepted: num_classes, ",
        ),
        (["train", str(SMOKE), "--set", "eval.protocol=hotel"], "Did you mean 'hotels'"),
        (["train", str(SMOKE), "--set", "optim.lr=.inf"], "'optim.lr' must be a finite number; got inf"),
        (["train", str(SMOKE), "--set", "loss.kwargs={pos_margin: .nan}"], "'loss.kwargs.pos_margin' must be a finite"),
    ],
)
def test_bad_configs_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dml train: error:") and message in err and "Traceback" not in err


def test_duplicate_config_key_exits_2_naming_both_lines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = SMOKE.read_text()
    assert text.count("\n  lr: 0.001\n") == 1
    line = text[: text.index("\n  lr: 0.001\n")].count("\n") + 2
    config = tmp_path / "twice.yaml"
    config.write_text(text.replace("\n  lr: 0.001\n", "\n  lr: 0.001\n  lr: 10.0\n"))
    assert main(["train", str(config), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dml train: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert f"key 'optim.lr' appears twice, on lines {line} and {line + 1}" in err
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert (
        main(["train", str(SMOKE), "--resume", "--output-dir", str(tmp_path / "run"), "--set", f"data.root={data}"])
        == 1
    )
    assert "Cannot resume" in capsys.readouterr().err


def test_protocol_the_dataset_cannot_serve_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Synthetic data has no is_query mask; the pipeline finds out (before any training) and names the fix."""
    data = tmp_path / "data"
    data.mkdir()
    assert (
        main(
            [
                "train",
                str(SMOKE),
                "--output-dir",
                str(tmp_path / "run"),
                "--set",
                f"data.root={data}",
                "--set",
                "data.kwargs={num_classes: 4, images_per_class: 4, image_size: 16}",
                "--set",
                "eval.protocol=query-gallery",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("dml train: error:") and "needs the per-image array 'is_query'" in err
    assert "eval.protocol=self" in err and "Traceback" not in err


def test_data_list_prints_builtin_datasets(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "list"]) == 0
    names = capsys.readouterr().out.split()
    assert {"synthetic", "digits"} <= set(names)


@pytest.mark.parametrize("config", ["smoke_synthetic.yaml", "digits.yaml"])
def test_example_configs_train_for_one_epoch(config: str, tmp_path: Path) -> None:
    """Each example config runs end to end (one epoch, data cached in a temporary folder)."""
    data, out = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    code = main(
        [
            "train",
            str(REPO / "configs" / config),
            "--output-dir",
            str(out),
            "--set",
            f"data.root={data}",
            "--set",
            "train.epochs=1",
            "--set",
            "eval.include=[recall, map@r]",
        ]
    )
    assert code == 0
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["epoch"] == 1 and 0.0 < final["recall@1"] <= 1.0 and final["loss"] > 0


def test_data_cache_builds_then_reuses_a_cub_cache(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`dml data cache` on a CUB fixture tree: a cache the registry's "cached" dataset opens, with the same labels."""
    import numpy as np

    import dml.data
    from tests.fixtures.benchmarks import make_cub

    make_cub(tmp_path / "cub200")
    argv = ["data", "cache", "cub200", "--root", str(tmp_path), "--size", "32", "--workers", "1"]
    assert main(argv) == 0
    assert "cached in" in capsys.readouterr().out
    cached = dml.data.build("cached", split="train", root=tmp_path, source="cub200", size=32)
    source = dml.data.build("cub200", split="train", root=tmp_path)
    assert np.array_equal(cached.labels, source.labels)
    assert tuple(cached[0][0].shape) == (3, 32, 32)
    assert main(argv) == 0  # complete and up to date: reused


def test_data_cache_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "cache", "cub2011", "--root", str(tmp_path)]) == 2
    assert "cub200" in capsys.readouterr().err  # did-you-mean
    assert main(["data", "cache", "cub200", "--root", str(tmp_path)]) == 1
    assert "dml data download cub200" in capsys.readouterr().err


def _tiny_run(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    kwargs = "data.kwargs={num_classes: 8, images_per_class: 4, image_size: 16}"
    sets = [
        f"data.root={data}",
        kwargs,
        "data.sampler.p=2",
        "model.embedding_dim=8",
        "train.epochs=1",
        "eval.include=[recall]",
        *extra,
    ]
    return ["train", str(SMOKE), "--output-dir", str(out), *[a for s in sets for a in ("--set", s)]]


def test_a_non_empty_output_folder_needs_resume_or_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(_tiny_run(tmp_path, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(_tiny_run(tmp_path, out, "optim.lr=0.5")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dml train: error: the output folder {out} is not empty (it holds 5 entries")
    assert "--resume" in err and "--overwrite" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*_tiny_run(tmp_path, out), "--resume"]) == 0  # a finished run: nothing to train
    assert main([*_tiny_run(tmp_path, out, "optim.lr=0.5"), "--overwrite"]) == 0
    assert "lr: 0.5" in (out / "config.yaml").read_text()
    (tmp_path / "file").write_text("x")
    assert main(_tiny_run(tmp_path, tmp_path / "file")) == 2
    assert "is a file" in capsys.readouterr().err


def test_resume_and_overwrite_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", str(SMOKE), "--resume", "--overwrite"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_resume_with_fewer_epochs_exits_1_and_keeps_the_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(_tiny_run(tmp_path, out, "train.epochs=2")) == 0
    config = (out / "config.yaml").read_text()
    capsys.readouterr()
    assert main([*_tiny_run(tmp_path, out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "after epoch 2, but train.epochs is 1" in err and err.count("\n") == 1 and "Traceback" not in err
    assert (out / "config.yaml").read_text() == config


def _train_on_broken_cub(tmp_path: Path, *, pipeline: str, workers: int, damage: str, extra: tuple[str, ...] = ()):
    """`dml train` on a CUB fixture with one training image truncated (or deleted), through the CLI entry point."""
    from tests.fixtures.benchmarks import make_cub, truncate

    tree = make_cub(tmp_path / "data" / "cub200")
    broken = tree.files[1]
    if damage == "truncated":
        truncate(broken, 0.3)
    else:
        broken.unlink()
    argv = ["train", str(SMOKE), "--output-dir", str(tmp_path / "run"), "--set", f"data.root={tmp_path / 'data'}"]
    for override in (
        "data.name=cub200",
        f"data.pipeline={pipeline}",
        "data.kwargs={}",
        "data.sampler={p: 2, k: 2}",
        "data.augment={size: 16, test_resize: 16}",
        "data.cache_size=20",
        "data.cache_workers=0",
        f"data.num_workers={workers}",
        "train.epochs=1",
        "eval.ks=[1]",
        *extra,
    ):
        argv += ["--set", override]
    return broken, main(argv)


@pytest.mark.parametrize(
    "pipeline,workers,damage",
    [
        ("jpeg", 0, "truncated"),
        ("jpeg", 1, "truncated"),
        ("cached", 0, "truncated"),
        ("jpeg", 0, "missing"),
        ("cached", 0, "missing"),
    ],
)
def test_a_broken_image_exits_1_with_one_line_naming_the_check_and_skip_corrupt(
    pipeline: str, workers: int, damage: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A truncated JPEG (or a deleted one) used to end `dml train` with a traceback (from a DataLoader worker, the
    worker's traceback inside the message)."""
    broken, code = _train_on_broken_cub(tmp_path, pipeline=pipeline, workers=workers, damage=damage)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("dml train: error: Image file ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "worker" not in err, err
    assert str(broken) in err and ("truncated or corrupt" if damage == "truncated" else "is missing") in err
    decode = " --decode" if damage == "truncated" else ""
    assert f"`dml data check cub200 --root {tmp_path / 'data'}{decode}`" in err, err
    assert "--set data.kwargs.skip_corrupt=true" in err, err


def test_the_skip_corrupt_the_message_names_trains_without_the_broken_image(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match=r"Skipping 1 unreadable image file"):
        broken, code = _train_on_broken_cub(
            tmp_path, pipeline="jpeg", workers=0, damage="truncated", extra=("data.kwargs.skip_corrupt=true",)
        )
    assert code == 0 and json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["epoch"] == 1
