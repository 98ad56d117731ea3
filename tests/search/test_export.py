"""``results.csv`` in the released Hotels-50K evaluation format, and ``results.json`` with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dml.eval.hotels import hotel_metrics_from_ids, read_result_csv
from dml.search import build_index, export, search
from tests.fixtures.benchmarks import write_jpeg


def _hotel_like(root: Path, first_id: int, hotels: int = 4, per_hotel: int = 3) -> dict[int, int]:
    """Images named <image_id>.jpg under <hotel>/, as Hotels-50K stores them; returns image id -> hotel id."""
    hotel_of = {}
    for h in range(hotels):
        for i in range(per_hotel):
            image_id = first_id + h * per_hotel + i
            write_jpeg(root / str(100 + h) / f"{image_id}.jpg", h + 1, image_id, (40 + 3 * i, 36))
            hotel_of[image_id] = 100 + h
    return hotel_of


def test_results_csv_is_read_by_the_released_format_reader_with_image_ids(trained, tmp_path: Path) -> None:
    run, _, _ = trained
    train_hotel = _hotel_like(tmp_path / "train", 5000)
    test_hotel = _hotel_like(tmp_path / "test", 9000, per_hotel=1)
    build_index(run, tmp_path / "train", tmp_path / "index")
    result = search(tmp_path / "index", [tmp_path / "test"], top_k=12)
    written = export(result, tmp_path / "out", report=False)
    queries, results = read_result_csv(written["csv"], results=12)
    assert sorted(queries.tolist()) == sorted(test_hotel) and set(results.ravel().tolist()) == set(train_hotel)
    chain_of = {h: (1 if h < 102 else -1) for h in range(100, 104)}
    metrics = hotel_metrics_from_ids(
        queries,
        results,
        test_hotel_of=test_hotel,
        train_hotel_of=train_hotel,
        chain_of=chain_of,
        instance_ks=(1, 10),
        chain_ks=(1,),
    )
    top1 = [train_hotel[r] == test_hotel[q] for q, r in zip(queries, results[:, 0])]
    assert metrics["instance@1"] == pytest.approx(np.mean(top1))
    record = json.loads(written["json"].read_text())
    first = record["queries"][0]
    assert first["id"] == int(queries[0]) and [m["id"] for m in first["matches"]] == results[0].tolist()
    assert first["matches"][0]["label"] == str(train_hotel[results[0, 0]])


def test_results_json_records_matches_and_provenance(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index", dtype="float16")
    result = search(tmp_path / "index", [images / "class_3"], top_k=5)
    record = json.loads(export(result, tmp_path / "out", report=False)["json"].read_text())
    assert record["top_k"] == 5 and record["search"] == "exact" and len(record["queries"]) == 6
    match = record["queries"][0]["matches"][0]
    assert set(match) == {"rank", "score", "row", "id", "path", "label"} and match["rank"] == 1
    scores = [m["score"] for m in record["queries"][0]["matches"]]
    assert scores == sorted(scores, reverse=True)
    assert record["model"]["fingerprint"] == result.run.fingerprint and record["model"]["epoch"] == 2
    assert record["index"]["dtype"] == "float16" and record["index"]["count"] == 48
    assert {"commit", "date", "hardware", "versions"} <= set(record["provenance"])
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(rows) == 6 and all(len(row.split(",")) == 6 for row in rows)  # ids: row numbers, no header
