"""``dml index`` and ``dml search`` on the command line: outputs, and every bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dml.cli import main


def _one_line(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"dml {command}: error: "), err
    return err


def test_index_then_search_writes_the_three_exports(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, images, _ = trained
    assert main(["index", str(run), "--images", str(images), "--out", str(tmp_path / "idx"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "indexed 48 images (16-d float32)" in out and "exact search" in out
    query = images / "class_2" / "img0.jpg"
    assert main(["search", str(tmp_path / "idx"), str(query), "--out", str(tmp_path / "res"), "--top-k", "7"]) == 0
    out = capsys.readouterr().out
    assert "img0.jpg: best match img0.jpg (label class_2, score 1.000)" in out
    assert {p.name for p in (tmp_path / "res").iterdir()} == {"results.csv", "results.json", "report.html"}
    assert len(json.loads((tmp_path / "res" / "results.json").read_text())["queries"][0]["matches"]) == 7


def test_approximate_index_prints_its_recall(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, images, _ = trained
    argv = ["index", str(run), "--images", str(images), "--out", str(tmp_path / "idx"), "--search", "approximate"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "approximate search: faiss hnsw" in out and "recall@48 against exact search 1.0000" in out


def test_bad_inputs_are_one_line_each(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, images, _ = trained
    assert main(["index", str(run), "--images", str(images), "--out", str(tmp_path / "idx"), "--no-progress"]) == 0
    capsys.readouterr()
    (tmp_path / "notes.docx").write_bytes(b"PK")
    assert main(["search", str(tmp_path / "idx"), str(tmp_path / "notes.docx"), "--out", str(tmp_path / "r")]) == 2
    assert "not an image format" in _one_line(capsys, "search")
    assert main(["search", str(run), str(images), "--out", str(tmp_path / "r")]) == 2
    assert "is incomplete: index.json, embeddings.npy, items.csv missing" in _one_line(capsys, "search")
    assert main(["index", str(tmp_path / "norun"), "--images", str(images), "--out", str(tmp_path / "i2")]) == 1
    assert "does not exist" in _one_line(capsys, "index")
    (images.parent / "broken.jpg").write_bytes(b"broken")
    try:
        code = main(
            [
                "search",
                str(tmp_path / "idx"),
                str(images.parent / "broken.jpg"),
                str(images / "class_0"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
    finally:
        (images.parent / "broken.jpg").unlink()
    assert code == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("dml search: warning: Skipped 1 unreadable query image") and len(err.splitlines()) == 1


def test_a_region_search_from_the_command_line(trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, images, _ = trained
    assert main(["index", str(run), "--images", str(images), "--out", str(tmp_path / "idx"), "--no-progress"]) == 0
    query = str(images / "class_1" / "img0.jpg")
    argv = ["search", str(tmp_path / "idx"), query, "--out", str(tmp_path / "r"), "--top-k", "5"]
    assert main([*argv, "--region", "0,0,20,20"]) == 0
    record = json.loads((tmp_path / "r" / "results.json").read_text())
    assert record["region"] == [0.0, 0.0, 20.0, 20.0] and record["score"].startswith("similarity carried")
    assert "of region [0.0, 0.0, 20.0, 20.0] (outlined)" in (tmp_path / "r" / "report.html").read_text()
    capsys.readouterr()
    assert main([*argv, "--region", "20,0,10,5"]) == 1
    assert "x0 < x1" in _one_line(capsys, "search")
    assert main([*argv, "--region", "500,500,600,600"]) == 1
    assert "outside the part of the query" in _one_line(capsys, "search")
