"""A run trained on a user's image folder (class colours, mixed sizes and formats), shared by the search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.user_images import make_image_folder

RUN = {
    "seed": 0,
    "deterministic": False,
    "device": "cpu",
    "data": {
        "name": "imagefolder",
        "kwargs": {"split_by": "image", "test_fraction": 0.5},
        "pipeline": "jpeg",
        "augment": {"size": 24, "test_resize": 28},
        "sampler": {"p": 3, "k": 2},
    },
    "model": {"backbone": "small_cnn", "embedding_dim": 16, "pooling": "avg", "backbone_kwargs": {"widths": [8, 16]}},
    "loss": {"name": "contrastive"},
    "train": {"epochs": 2},
    "eval": {"ks": [1, 2], "include": ["recall", "map@r"]},
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """``(run folder, image folder, final metrics)`` of a 2-epoch run on an 8-class image folder (6 images a class)."""
    from dml.train import from_dict, train

    base = tmp_path_factory.mktemp("trained")
    images = make_image_folder(base / "photos", classes=8, per_class=6)
    config = from_dict({**RUN, "output_dir": str(base / "run"), "data": {**RUN["data"], "root": str(images)}})
    final = train(config)
    return base / "run", images, final
