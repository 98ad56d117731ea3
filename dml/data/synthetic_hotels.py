"""``synthetic-hotels``: a Hotels-50K in miniature, built on the synthetic generator (:mod:`dml.data.synthetic`).

Hotels-50K (Stylianou et al., AAAI 2019) has the structure this dataset copies:

* **classes are hotels** (here "rooms": each class of the generator, with its images unchanged), and hotels belong
  to **chains** whose rooms look alike: a chain here is a sibling group of the generator (``siblings`` classes that
  share a prototype), or ``groups_per_chain`` consecutive groups; a share ``independent_share`` of the chains
  (seeded) are independent hotels with chain id ``-1``, as Hotels-50K's hotels of no known chain;
* **two image sources**: the generator's mode 0 (of ``modes_per_class=2``) are the "travel_website" photos, mode 1
  the "traffickcam" photos, a different look of the same room;
* **not zero-shot**: the queries (``split="test"``) are the last ``queries_per_room`` TraffickCam photos of every
  room, and the gallery (``split="train"``) is all the other images of the same rooms; evaluation ranks the
  queries against the training images (``eval.protocol: hotels``, :mod:`dml.eval.hotels`);
* **occluded test sets**: ``occlusion="low" | "medium" | "high"`` pastes a person-shaped silhouette on every query
  (:func:`dml.data.occlusion.occlusion_masks`, coverage ranges :data:`~dml.data.occlusion.OCCLUSION_LEVELS`,
  seeded by ``seed``), the same masks on every run; ``"unoccluded"`` leaves them as they are.

Attributes, as :class:`dml.data.Hotels50K`: ``labels`` (room ids), ``chain_labels``, ``sources``, ``image_ids``
(the index of the image in the generator's output), ``occlusion``; and ``masks`` (the pasted masks of the test
split, ``None`` when unoccluded).
"""

from __future__ import annotations

import os

import numpy as np

from dml.data.base import InMemoryDataset, Transform, check_split
from dml.data.occlusion import OCCLUSION_LEVELS, occlusion_masks, paste_people
from dml.data.registry import register
from dml.data.synthetic import SyntheticDataset

NAME = "synthetic-hotels"
OCCLUSIONS = ("unoccluded", *OCCLUSION_LEVELS)
SOURCES = ("travel_website", "traffickcam")


@register(NAME)
class SyntheticHotels(InMemoryDataset):
    """Synthetic hotel rooms with chains, two image sources and occluded query sets (module docstring).

    Args:
        split: ``"train"`` (the gallery), ``"test"`` (the queries) or ``"all"`` (train then test).
        rooms: Number of rooms (classes). images_per_room: Images per room (half of each source).
        queries_per_room: TraffickCam images of each room held out as queries (at most half the images minus 2).
        siblings: Rooms per sibling group of the generator. groups_per_chain: Sibling groups per chain.
        independent_share: Share of the chains whose rooms have no known chain (``-1``).
        occlusion: ``"unoccluded"``, ``"low"``, ``"medium"`` or ``"high"``: the query set.
        sibling_similarity, image_size, jitter, clutter, noise, seed: The generator's knobs
            (:class:`dml.data.SyntheticDataset`).
    """

    #: Keywords that change only the test split (see :func:`dml.data.loaders.split_kwargs`).
    TEST_ONLY_KWARGS = ("occlusion",)

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, rooms: int = 60, images_per_room: int = 16,
                 queries_per_room: int = 4, siblings: int = 4, groups_per_chain: int = 1,
                 independent_share: float = 0.25, occlusion: str = "unoccluded", sibling_similarity: float = 0.6,
                 image_size: int = 32, jitter: float = 0.4, clutter: float = 0.5, noise: float = 0.04,
                 seed: int = 0) -> None:
        check_split(split)
        if occlusion not in OCCLUSIONS:
            raise ValueError(f"Unknown occlusion {occlusion!r} for {NAME}; use one of {list(OCCLUSIONS)}.")
        if images_per_room % 2 or not 1 <= queries_per_room <= images_per_room // 2 - 2:
            raise ValueError(f"images_per_room must be even and queries_per_room between 1 and images_per_room / 2 "
                             f"- 2 (two TraffickCam photos stay in the gallery); got {images_per_room} and "
                             f"{queries_per_room}.")
        if not 0 <= independent_share < 1 or groups_per_chain < 1:
            raise ValueError(f"independent_share must be in [0, 1) and groups_per_chain >= 1; got "
                             f"{independent_share} and {groups_per_chain}.")
        # every class of the generator is a room, its images unchanged
        source = SyntheticDataset("all", root=root, num_classes=rooms, images_per_class=images_per_room,
                                  modes_per_class=2, siblings=siblings, sibling_similarity=sibling_similarity,
                                  image_size=image_size, jitter=jitter, clutter=clutter, noise=noise, seed=seed)
        rooms_of = source.labels
        chain_of_room = source.factors["group"] // groups_per_chain
        chains = np.unique(chain_of_room)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 19]))
        independent = rng.permutation(chains)[: round(independent_share * len(chains))]
        chain_of_room = np.where(np.isin(chain_of_room, independent), -1, chain_of_room)

        modes = source.modes
        rank_in_source = np.zeros(len(rooms_of), dtype=np.int64)  # position among the room's TraffickCam photos
        for r in range(rooms):
            photos = np.flatnonzero((rooms_of == r) & (modes == 1))
            rank_in_source[photos] = np.arange(len(photos))
        is_query = (modes == 1) & (rank_in_source >= images_per_room // 2 - queries_per_room)
        order = np.concatenate([np.flatnonzero(~is_query), np.flatnonzero(is_query)])
        keep = {"train": order[: (~is_query).sum()], "test": order[(~is_query).sum():], "all": order}[split]
        images = source.images[keep]
        self.masks = None
        if occlusion != "unoccluded" and split != "train":
            tests = is_query[keep]
            self.masks = occlusion_masks(int(tests.sum()), image_size, level=occlusion, seed=seed)
            images = images.copy()
            images[tests] = paste_people(images[tests], self.masks, seed=seed)
        super().__init__(split=split, images=images, labels=rooms_of[keep], transform=transform)
        self.chain_labels = chain_of_room[rooms_of[keep]].astype(np.int64)
        self.sources = np.array(SOURCES)[modes[keep]]
        self.image_ids = keep.astype(np.int64)
        self.is_test = is_query[keep]
        self.occlusion = occlusion
