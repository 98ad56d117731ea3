"""Heat maps and region queries of a search: the maps sum to the scores, a region's scores are s_R."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dml.explain import model_contributions
from dml.search import Preprocessing, build_index, search
from dml.search.explain import box_weights, input_box, model_input, pair_maps, parse_region

JPEG = Preprocessing(pipeline="jpeg", size=24, test_resize=28, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_input_box_follows_the_resize_and_centre_crop() -> None:
    # 56x40: shorter side 40 -> 28, 39x28 (int(28 * 56 / 40)), centre crop 24 from left 8 (round(7.5)), top 2
    assert input_box(JPEG, (56, 40), (0, 0, 56, 40)) == pytest.approx((-8.0, -2.0, 31.0, 26.0))
    cached = Preprocessing(pipeline="cached", size=24, test_resize=28, cache_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    # 40x40 -> 32 square (x0.8) -> 28 (x0.875) -> crop 24 from 2
    assert input_box(cached, (40, 40), (10, 10, 20, 20)) == pytest.approx((5.0, 5.0, 12.0, 12.0))


def test_box_weights_are_cell_shares_and_an_outside_box_is_refused() -> None:
    weights = box_weights((0, 0, 12, 6), 24, (4, 4))  # cells of 6x6 pixels
    assert weights.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert box_weights((3, 0, 6, 6), 24, (4, 4))[0, 0] == 0.5
    with pytest.raises(ValueError, match="outside the part of the query"):
        box_weights((30, 30, 40, 40), 24, (4, 4))
    with pytest.raises(ValueError, match="x0 < x1"):
        parse_region("5,5,2,9")


def test_each_heat_map_sums_to_the_score_of_its_match(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    query = images / "class_4" / "img2.jpg"
    result = search(tmp_path / "index", [query], top_k=6)
    pre = result.index.preprocessing
    matches = torch.cat([model_input(pre, result.index.items.paths[r]) for r in result.rows[0]])
    map_q, map_m, similarity = pair_maps(result.run.model, model_input(pre, query), matches)
    assert np.allclose(similarity, result.scores[0], atol=1e-5)
    assert np.allclose(map_q.sum(axis=(1, 2)), result.scores[0], atol=1e-5)
    assert np.allclose(map_m.sum(axis=(1, 2)), result.scores[0], atol=1e-5)
    assert not np.allclose(map_q[0], map_q[0].mean())  # the similarity is not spread evenly


def test_a_region_search_ranks_by_the_similarity_the_region_carries(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    query = images / "class_4" / "img2.jpg"
    width, height = Image.open(query).size
    whole = search(tmp_path / "index", [query], top_k=10, region=(0, 0, width, height))
    plain = search(tmp_path / "index", [query], top_k=10)
    assert np.array_equal(whole.rows, plain.rows) and np.allclose(whole.scores, plain.scores, atol=1e-5)
    part = search(tmp_path / "index", [query], top_k=48, region=(0, 0, width / 2, height))
    pre = part.index.preprocessing
    batch = model_input(pre, query)
    contributions = model_contributions(part.run.model, batch)
    weights = box_weights(input_box(pre, (width, height), (0, 0, width / 2, height)), 24, contributions.grid)
    matches = torch.cat([model_input(pre, p) for p in part.index.items.paths])
    map_q, _, _ = pair_maps(part.run.model, batch, matches)
    s_r = (map_q * weights).sum(axis=(1, 2))  # s_R of every gallery image, from the heat maps
    assert np.allclose(part.scores[0], s_r[part.rows[0]], atol=1e-5)
    assert sorted(part.rows[0].tolist()) == list(range(48)) and np.all(np.diff(part.scores[0]) <= 1e-6)
    assert not np.array_equal(part.rows[0, :10], plain.rows[0])  # the half image ranks differently
