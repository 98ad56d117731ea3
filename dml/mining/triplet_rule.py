"""The ``triplets=``/``miner=`` options of the triplet-based losses (triplet, NCA): which miner to use, and mining
with an error that names the loss when the miner returns pairs.

This module imports the miners; the miners import only :mod:`dml.mining.registry`, so there is no import loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.mining.hardest_negative import HardestNegativeMiner
from dml.mining.registry import resolve


def resolve_triplet_rule(triplets: str, miner: str | Mapping[str, Any] | Miner | None, *, loss: str) -> Miner | None:
    """The miner of a triplet-based loss with a ``triplets="all"|"hardest"|...`` rule and a ``miner=`` option: the
    explicit miner, the batch-hard miner for ``"hardest"``, or ``None`` (the loss's own all-triplets path)."""
    if miner is not None and triplets != "all":
        raise ValueError(
            f"Pass either triplets={triplets!r} or miner=... to the {loss} loss, not both: a miner "
            "replaces the triplets rule."
        )
    if triplets == "hardest":
        return HardestNegativeMiner(positives="hardest")
    return resolve(miner)


def mine_triplets(miner: Miner, sim: Tensor, labels: Tensor, *, loss: str) -> Triplets:
    """``miner.mine(sim, labels)``, refusing a pair miner with an error that names the loss."""
    mined = miner.mine(sim, labels)
    if not isinstance(mined, Triplets):
        raise TypeError(
            f"The {loss} loss needs a triplet miner; {type(miner).__name__} returns "
            f"{type(mined).__name__}. Use e.g. miner='semihard' or 'hardest_negative'."
        )
    return mined
