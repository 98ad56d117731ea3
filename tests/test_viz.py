"""Image grids: one row per class (or mode), labelled, drawn into a new or a given axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dml.data import DMLDataset, build
from dml.viz import plot_image_grid, plot_modes


@pytest.fixture
def synthetic(tmp_path):
    return build("synthetic", split="test", root=tmp_path, num_classes=8, images_per_class=6, image_size=16)


def test_grid_has_one_labelled_row_per_class(synthetic):
    fig = plot_image_grid(synthetic, classes=[6, 4, 5], per_class=5, title="siblings")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class 6", "class 4", "class 5"]
    mosaic = ax.get_images()[0].get_array()
    assert mosaic.shape[:2] == (3 * 16 + 2 * 2, 5 * 16 + 4 * 2)
    first = np.flatnonzero(synthetic.labels == 6)
    assert any(np.allclose(mosaic[:16, :16], synthetic.images[i] / 255.0) for i in first)
    assert ax.get_title() == "siblings"
    plt.close(fig)


def test_grid_draws_into_a_given_axes_and_pads_small_classes(synthetic):
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_image_grid(synthetic, per_class=10, ax=right) is fig
    assert len(right.get_yticklabels()) == synthetic.num_classes and not left.get_images()
    plt.close(fig)


def test_modes_rows(synthetic):
    fig = plot_modes(synthetic, 5, per_mode=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["mode 0", "mode 1", "mode 2"]
    plt.close(fig)
    with pytest.raises(ValueError, match="no images"):
        plot_modes(synthetic, 0)


def test_datasets_without_an_images_array_are_read_and_resized():
    class Files(DMLDataset):
        def __init__(self):
            super().__init__(split="all", labels=np.array([0, 0, 1]))

        def load(self, index):
            return torch.full((3, 10 + index, 12), 0.5)

    fig = plot_image_grid(Files(), per_class=2)
    assert fig.axes[0].get_images()[0].get_array().shape == (2 * 10 + 2, 2 * 10 + 2, 3)
    plt.close(fig)
