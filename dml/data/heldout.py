"""``heldout``: a class-disjoint validation split carved out of another dataset's training classes.

Model selection must not look at the test classes. ``build("heldout", split=..., source="synthetic",
validation_classes=10, source_kwargs={...})`` takes the ``"train"`` split of ``source`` and holds out its last
``validation_classes`` classes (in sorted class-id order, so sibling groups of the synthetic set stay together when
the count is a multiple of the group size): ``split="train"`` is the remaining training classes, ``split="test"``
the held-out ones (what the trainer then evaluates on), ``split="all"`` both. Labels keep the source's class ids.
The test split of ``source`` is never read.

Only in-memory sources (``synthetic``, ``digits``) can be carved this way; a real benchmark would need the same for
its image files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dml.data.base import InMemoryDataset, Transform
from dml.data.registry import build, register


@register("heldout")
def heldout(
    *,
    split: str = "train",
    root: Any = None,
    transform: Transform | None = None,
    source: str = "synthetic",
    validation_classes: int = 10,
    source_kwargs: Mapping[str, Any] | None = None,
) -> InMemoryDataset:
    """The training classes of ``source`` minus (``"train"``) or only (``"test"``) its last ``validation_classes``."""
    if source == "heldout":
        raise ValueError("source='heldout' would carve a carved split; name the original dataset, e.g. 'synthetic'.")
    full = build(source, split="train", root=root, **dict(source_kwargs or {}))
    if not isinstance(full, InMemoryDataset):
        raise ValueError(
            f"heldout needs an in-memory dataset (synthetic, digits); {source!r} is {type(full).__name__}. "
            "Carve a real benchmark's validation classes from its file list instead."
        )
    classes = np.unique(full.labels)
    if isinstance(validation_classes, bool) or not 1 <= int(validation_classes) < len(classes) - 1:
        raise ValueError(
            f"validation_classes must be an integer in [1, {len(classes) - 2}] (the {source!r} training split has "
            f"{len(classes)} classes and both parts need two); got {validation_classes!r}."
        )
    held = classes[len(classes) - int(validation_classes) :]
    keep = {"train": ~np.isin(full.labels, held), "test": np.isin(full.labels, held)}.get(split)
    if keep is None:
        keep = np.ones(len(full.labels), dtype=bool)
    return InMemoryDataset(split=split, images=full.images[keep], labels=full.labels[keep], transform=transform)
