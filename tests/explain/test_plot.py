"""dml.explain.plot: the overlay covers the image with the map's cells on a zero-centred scale."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dml.explain import as_display_image, overlay, plot_similarity_maps, similarity_maps
from dml.models import build


def test_the_overlay_stretches_the_map_over_the_image_on_a_symmetric_scale() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = 255
    heat = np.array([[0.2, -0.1], [0.05, 0.0]])
    fig, ax = plt.subplots()
    shown = overlay(image, heat, ax=ax, alpha=0.5)
    assert shown.get_extent() == [-0.5, 31.5, 31.5, -0.5]
    assert ax.images[0].get_extent() == shown.get_extent()
    assert shown.get_clim() == (-0.2, 0.2) and shown.get_alpha() == 0.5
    np.testing.assert_array_equal(shown.get_array(), heat)
    plt.close(fig)


def test_images_in_the_datasets_format_are_displayed_as_rgb() -> None:
    chw = torch.rand(3, 8, 6)
    np.testing.assert_allclose(as_display_image(chw), chw.permute(1, 2, 0).numpy(), rtol=1e-6)
    assert as_display_image(np.full((4, 4, 3), 255, np.uint8)).max() == 1.0
    assert as_display_image(np.zeros((4, 5))).shape == (4, 5, 3)


def test_a_pair_is_drawn_on_one_scale_with_its_sums_in_the_titles() -> None:
    torch.manual_seed(0)
    model = build("small_cnn", embedding_dim=8, backbone_kwargs={"widths": (4, 8)})
    a, b = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    maps = similarity_maps(model, a, b)
    fig = plot_similarity_maps(a, b, maps)
    left, right = fig.axes[:2]
    assert left.images[1].get_clim() == right.images[1].get_clim()
    assert left.get_title() == f"A: sum {maps.similarity:.3f}"
    assert len(fig.axes) == 3  # two panels and the colour bar
    plt.close(fig)


def test_a_mask_is_outlined_where_it_crosses_one_half() -> None:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    fig, ax = plt.subplots()
    overlay(np.zeros((16, 16, 3)), np.zeros((2, 2)), ax=ax, mask=mask)
    (contour,) = [c for c in ax.collections if c.get_paths()]
    vertices = np.concatenate([path.vertices for path in contour.get_paths()])
    assert vertices.min() == pytest.approx(3.5, abs=0.01) and vertices.max() == pytest.approx(11.5, abs=0.01)
    plt.close(fig)


def test_bad_input_fails_in_one_line() -> None:
    with pytest.raises(ValueError, match="must be 2-D") as info:
        overlay(np.zeros((8, 8, 3)), np.zeros(4))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="An image must be"):
        overlay(np.zeros((8, 8, 4, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="the image is 8 x 8"):
        overlay(np.zeros((8, 8, 3)), np.zeros((2, 2)), mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((8, 8, 3)), np.zeros((2, 2)), alpha=2)
