"""``report.html``: self-contained (no script, no network), small thumbnails, and it renders in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dml.search import build_index, export, search


@pytest.fixture()
def report(trained, tmp_path: Path) -> Path:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    result = search(tmp_path / "index", [images / "class_0" / "img0.jpg", images / "class_5"], top_k=20)
    return export(result, tmp_path / "out", shown=4)["report"]


def test_the_report_is_self_contained_and_small(report: Path) -> None:
    text = report.read_text()
    assert "<script" not in text and not re.search(r"(src|href)=[\"'](https?:|//)", text)
    assert "@import" not in text and "url(" not in text
    uris = re.findall(r'src="(data:image/jpeg;base64,[^"]+)"', text)
    heat = re.findall(r'<div class="heat"><img alt="" src="data:image/jpeg;base64,[^"]+"><img', text)
    assert len(uris) == 7 * (1 + 4 * 3) and len(heat) == 7 * 4  # 7 queries, 4 matches each with its 2 heat maps
    assert max(len(u) for u in uris) < 12_000 and report.stat().st_size < 600_000
    assert text.count("class='query'") == 7 and "#4 <span class='score'>" in text and "#5 " not in text
    assert "Each map sums to the pair's cosine similarity" in text


def test_the_report_leaves_out_the_heat_maps_on_request(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    result = search(tmp_path / "index", [images / "class_0" / "img0.jpg"], top_k=3)
    text = export(result, tmp_path / "out", heat_maps=False)["report"].read_text()
    assert 'class="heat"' not in text and text.count("data:image/jpeg") == 4


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium/chromium-browser/google-chrome on PATH for the screenshot")
def test_the_report_renders_its_thumbnails_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1000,700",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # The fixture's images are saturated class colours; an unrendered thumbnail leaves the page grey and white.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    coloured = saturation > 60
    assert coloured.mean() > 0.05, "the thumbnails did not render"
    rows = np.flatnonzero(coloured[:, 20:170].mean(axis=1) > 0.3)  # the query thumbnails' column
    assert rows.size and rows.min() > 40  # below the heading, as laid out
