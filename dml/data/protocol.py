"""The evaluation protocols as data: which dataset is evaluated how, and the :class:`Evaluation` of a split.

A dataset's protocol decides which per-image arrays its evaluation split must carry (``is_query`` for In-Shop,
``chain_labels`` for Hotels-50K), so the loaders of :mod:`dml.data.loaders` build an :class:`Evaluation` without
knowing how it is scored. :func:`dml.eval.evaluate` scores it; :mod:`dml.eval.protocol` describes the protocols and
their metrics and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

#: ``protocol="auto"``: the benchmarks whose own protocol is not self-retrieval; every other dataset is evaluated
#: by ``self``-retrieval. In-Shop: queries against a separate gallery (Liu et al., CVPR 2016); Hotels-50K: test
#: photos against the training images (Stylianou et al., AAAI 2019).
AUTO_PROTOCOL = {"inshop": "query-gallery", "hotels50k": "hotels"}
#: The per-image array of the evaluation split (and, for ``hotels``, of the training gallery) each protocol needs.
PROTOCOL_ARRAY = {"query-gallery": "is_query", "hotels": "chain_labels"}
#: The values of ``protocol`` (``"auto"``: the dataset's own, :func:`resolve_protocol`).
PROTOCOLS = ("auto", "self", "query-gallery", "hotels")
#: One line per protocol, for messages.
PROTOCOL_NAMES = {
    "self": "every image queries all the others",
    "query-gallery": "queries against a gallery",
    "hotels": "test photos against the training images",
}
def resolve_protocol(dataset: str, protocol: str = "auto") -> str:
    """The evaluation protocol for dataset name ``dataset``: ``"auto"`` becomes :data:`AUTO_PROTOCOL`'s entry
    (``"self"`` when there is none); an explicit protocol is returned as it is."""
    return AUTO_PROTOCOL.get(dataset, "self") if protocol == "auto" else protocol


@dataclass
class Evaluation:
    """What :func:`dml.eval.evaluate` needs for one ``protocol`` (see the module docstring).

    Attributes:
        protocol: ``"self"``, ``"query-gallery"`` or ``"hotels"`` (resolved).
        data: The evaluation split for :func:`dml.eval.embed`, a dataset or a ``DataLoader`` of ready batches.
        is_query: ``query-gallery``: one flag per item of ``data``, ``True`` for the queries.
        chain_labels: ``hotels``: the chain id of each item of ``data`` (``-1``: no known chain).
        gallery: ``hotels``: the training images under the evaluation transform (a dataset or ``DataLoader``).
        gallery_chain_labels: ``hotels``: the chain id of each gallery item.
    """

    protocol: str
    data: Any
    is_query: np.ndarray | None = None
    chain_labels: np.ndarray | None = None
    gallery: Any = None
    gallery_chain_labels: np.ndarray | None = None

    @classmethod
    def of(
        cls, data: Any, *, protocol: str = "self", gallery: Any = None, arrays: Any = None, gallery_arrays: Any = None
    ) -> Evaluation:
        """The evaluation of ``data`` under ``protocol``, reading ``is_query`` / ``chain_labels`` from the dataset.

        Args:
            data: The evaluation split, a dataset or a ``DataLoader`` of ``(images, labels)`` batches.
            protocol: ``"self"``, ``"query-gallery"`` or ``"hotels"``.
            gallery: ``hotels``: the training images under the evaluation transform.
            arrays, gallery_arrays: The objects carrying the per-image arrays, when not ``data`` (or its loader's
                dataset) and ``gallery`` themselves (e.g. the cache behind a loader of centre-cropped batches).
        """
        if protocol == "self":
            return cls(protocol, data)
        if protocol not in PROTOCOL_ARRAY:
            raise ValueError(f"Unknown evaluation protocol {protocol!r}; use one of {list(PROTOCOL_NAMES)}.")
        if protocol == "query-gallery":
            is_query = np.asarray(_array(arrays, data, "is_query", protocol), dtype=bool)
            if is_query.all() or not is_query.any():
                raise ValueError(
                    f"Protocol 'query-gallery' needs queries and gallery items, but the "
                    f"{len(is_query)} evaluation images are {'all' if is_query.all() else 'none of them'}"
                    " queries; evaluate the split that holds both (In-Shop's test split, no 'subset')."
                )
            return cls(protocol, data, is_query=is_query)
        if gallery is None:
            raise ValueError(
                "Protocol 'hotels' ranks the test photos against the training images, so it needs "
                "gallery=<training split under the evaluation transform>; or use protocol='self'."
            )
        chains = np.asarray(_array(arrays, data, "chain_labels", protocol), dtype=np.int64)
        gallery_chains = np.asarray(_array(gallery_arrays, gallery, "chain_labels", protocol), dtype=np.int64)
        return cls(protocol, data, chain_labels=chains, gallery=gallery, gallery_chain_labels=gallery_chains)


def _array(arrays: Any, data: Any, name: str, protocol: str) -> Any:
    source = arrays if arrays is not None else data.dataset if isinstance(data, DataLoader) else data
    value = getattr(source, name, None)
    if value is None:
        raise ValueError(
            f"Protocol {protocol!r} ({PROTOCOL_NAMES[protocol]}) needs the per-image array {name!r}, "
            f"which {type(source).__name__} does not have; pass a dataset that carries it (e.g. "
            "dml.data.build('inshop', split='test')) or use protocol='self'."
        )
    return value
