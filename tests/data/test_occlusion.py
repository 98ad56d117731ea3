"""People-shaped occlusions: coverage within the stated ranges, seeded, and the training augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.data.occlusion import (
    OCCLUSION_LEVELS,
    Occlude,
    OccludedBatchAugment,
    mask_coverage,
    occlusion_masks,
    paste_people,
    person_mask,
)
from dml.data.settings import ConfigError, OcclusionConfig


@pytest.mark.parametrize("level", sorted(OCCLUSION_LEVELS))
def test_level_masks_cover_their_range_and_are_seeded(level):
    lo, hi = OCCLUSION_LEVELS[level]
    masks = occlusion_masks(30, 32, level=level, seed=4)
    coverage = mask_coverage(masks)
    assert ((coverage >= lo) & (coverage <= hi)).all(), coverage
    assert coverage.max() - coverage.min() > (hi - lo) / 3  # spread over the range, not one size
    assert np.array_equal(masks, occlusion_masks(30, 32, level=level, seed=4))
    assert not np.array_equal(masks, occlusion_masks(30, 32, level=level, seed=5))


def test_a_silhouette_is_person_shaped():
    mask = person_mask(64, rng=np.random.default_rng(0), scale=1.0)
    rows = mask.sum(axis=1)
    filled = np.flatnonzero(rows)
    assert filled[0] == 0 and filled[-1] == 63  # height = the image side at scale 1
    head, shoulders = rows[filled[0] + 5], rows[filled[0] + 20]
    assert 0 < head < shoulders  # a narrow head above wider shoulders
    legs = mask[58]  # two separate legs near the feet: more than one run of filled pixels
    runs = np.flatnonzero(np.diff(legs.astype(int)) == 1)
    assert len(runs) >= 2


def test_scale_is_the_height_and_stays_inside():
    rng = np.random.default_rng(1)
    for scale in (0.3, 0.5, 0.7):
        mask = person_mask(100, rng=rng, scale=scale)
        height = np.ptp(np.flatnonzero(mask.any(axis=1))) + 1
        assert abs(height - 100 * scale) <= 2


def test_mask_coverage_reads_released_masks():
    png = np.full((10, 10), 255, dtype=np.uint8)
    png[:5, :4] = 0  # the released masks: black person on white
    assert mask_coverage(png)[0] == pytest.approx(0.2)


def test_paste_people_changes_only_the_mask():
    images = np.full((2, 16, 16, 3), 128, dtype=np.uint8)
    masks = occlusion_masks(2, 16, coverage=(0.2, 0.4), seed=0)
    out = paste_people(images, masks, seed=0)
    changed = (out != images).any(axis=-1)
    assert not changed[~masks].any() and changed[masks].mean() > 0.9
    assert np.array_equal(out, paste_people(images, masks, seed=0))


def test_occlude_augmentation_batch_is_seeded_and_sized():
    images = torch.rand(16, 3, 32, 32)
    occlude = Occlude(p=1.0, scale=(0.3, 0.7))
    a = occlude(images, generator=torch.Generator().manual_seed(0))
    b = occlude(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    hidden = (a != images).any(dim=1).float().mean(dim=(1, 2))
    assert (hidden > 0).all() and (hidden < 0.7**2).all()  # inside a box of at most 70 % of the side
    # fill "mean": the hidden pixels hold the image's own mean colour
    j, where = 0, (a[0] != images[0]).any(dim=0)
    assert torch.allclose(a[j][:, where], images[j].mean(dim=(1, 2))[:, None].expand(-1, int(where.sum())))
    none = Occlude(p=0.0)(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(none, images)


def test_occlude_single_images_and_area_measure():
    torch.manual_seed(0)
    image = torch.rand(3, 40, 40)
    out = Occlude(p=1.0, scale=(0.3, 0.4), measure="area", fill="random")(image)
    hidden = (out != image).any(dim=0).float().mean()
    assert out.shape == image.shape and 0.28 <= hidden <= 0.42


def test_batch_augment_then_occlude():
    class Identity:
        size = 8

        def __call__(self, images, *, generator=None, **kw):
            return images.float()

    chained = OccludedBatchAugment(Identity(), Occlude(p=1.0))
    out = chained(torch.zeros(4, 3, 8, 8, dtype=torch.uint8) + 3, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32 and chained.size == 8


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"p": 1.5}, "probability"), ({"measure": "height"}, "measure"), ({"fill": "black"}, "fill"),
     ({"scale": [0.7, 0.3]}, "range"), ({"scale": [0.3]}, "range")],
)
def test_bad_occlusion_settings_fail_with_the_config_key(kw, message):
    with pytest.raises(ConfigError, match=f"data.augment.occlusion.*{message}"):
        OcclusionConfig(**kw)


def test_bad_mask_requests():
    with pytest.raises(ValueError, match="exactly one"):
        person_mask(16, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="level"):
        occlusion_masks(1, 16, level="extreme")
    with pytest.raises(ValueError, match="narrower"):
        occlusion_masks(1, 8, coverage=(0.30, 0.31))
