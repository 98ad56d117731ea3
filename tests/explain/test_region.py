"""dml.explain.region: region sums of the heat map, the region query vector and the search by a part."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.explain import (
    cell_weights,
    model_contributions,
    region_query,
    region_search,
    region_similarity,
    similarity_maps,
)
from dml.models import build


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("small_cnn", embedding_dim=12, backbone_kwargs={"widths": (6, 8)}).eval()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_the_full_region_is_the_similarity_and_parts_add_up(model) -> None:
    a, b = _images(2)
    maps = similarity_maps(model, a, b)
    assert region_similarity(maps, np.ones((8, 8), bool)) == pytest.approx(maps.similarity, abs=1e-12)
    assert region_similarity(maps, np.ones((16, 16)), side="b") == pytest.approx(maps.similarity, abs=1e-12)
    left = np.zeros((8, 8), bool)
    left[:, :3] = True
    assert region_similarity(maps, left) == pytest.approx(maps.map_a[:, :3].sum(), abs=1e-15)
    assert region_similarity(maps, left) + region_similarity(maps, ~left) == pytest.approx(maps.similarity)


def test_a_pixel_mask_weights_cells_by_coverage() -> None:
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 255  # one pixel of the top-left 2x2 cell
    mask[2:, 2:] = 255
    np.testing.assert_allclose(cell_weights(mask, (2, 2)), [[0.25, 0.0], [0.0, 1.0]])


def test_region_search_scores_are_region_sums_against_every_gallery_image(model) -> None:
    query, gallery_images = _images(1)[0], _images(6, seed=1)
    with torch.no_grad():
        gallery = model(gallery_images)
    region = np.zeros((16, 16), bool)
    region[4:12, 2:10] = True
    indices, scores = region_search(model, query, region, gallery, k=6)
    expected = [region_similarity(similarity_maps(model, query, g), region) for g in gallery_images]
    np.testing.assert_allclose(scores, np.asarray(expected)[indices], atol=1e-6)
    assert list(indices) == list(np.argsort(-np.asarray(expected), kind="stable"))
    full, _ = region_search(model, query, np.ones((8, 8)), gallery, k=6)
    with torch.no_grad():
        cosine = (model(query[None]) @ gallery.T)[0].numpy()
    assert list(full) == list(np.argsort(-cosine, kind="stable"))


def test_the_query_vector_of_the_whole_image_is_its_unit_embedding(model) -> None:
    contributions = model_contributions(model, _images(3))
    q = region_query(contributions, np.ones((8, 8)), index=2)
    e = contributions.embedding[2]
    torch.testing.assert_close(q, e / e.norm())


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (np.ones((5, 5)), "does not tile the 8 x 8 feature grid"),
        (np.ones((8, 8, 1)), "must be a 2-D mask"),
        (np.full((8, 8), 2.0), r"must lie in \[0, 1\]"),
    ],
)
def test_bad_regions_fail_in_one_line(model, region, message: str) -> None:
    maps = similarity_maps(model, *_images(2))
    with pytest.raises(ValueError, match=message) as info:
        region_similarity(maps, region)
    assert "\n" not in str(info.value)


def test_a_gallery_of_another_size_is_refused(model) -> None:
    with pytest.raises(ValueError, match=r"gallery must be \(N, 12\)"):
        region_search(model, _images(1)[0], np.ones((8, 8)), torch.rand(4, 5))
    with pytest.raises(ValueError, match="side"):
        region_similarity(similarity_maps(model, *_images(2)), np.ones((8, 8)), side="c")
