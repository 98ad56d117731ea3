"""Miners: rules that select pairs or triplets from a batch. ``build(name, **kw)`` constructs one.

>>> miner = build("semihard", margin=0.1)
>>> triplets = miner(embeddings, labels)   # Triplets(anchor, positive, negative)

Registered miners: ``semihard`` (FaceNet), ``hardest_negative`` (batch hard), ``easy_positive`` (EPHN / EPSHN),
``distance_weighted`` (Wu et al. 2017) and its baseline ``uniform``. Losses accept any of them through ``miner=``
(see :func:`resolve`).
"""

from dml.mining.base import Miner, Pairs, Triplets
from dml.mining.distance_weighted import DistanceWeightedMiner
from dml.mining.easy_positive import EasyPositiveMiner
from dml.mining.hardest_negative import HardestNegativeMiner
from dml.mining.registry import available, build, register, resolve
from dml.mining.semihard import SemiHardMiner
from dml.mining.triplet_rule import mine_triplets, resolve_triplet_rule
from dml.mining.uniform import UniformNegativeMiner

__all__ = [
    "DistanceWeightedMiner",
    "EasyPositiveMiner",
    "HardestNegativeMiner",
    "Miner",
    "Pairs",
    "SemiHardMiner",
    "Triplets",
    "UniformNegativeMiner",
    "available",
    "build",
    "mine_triplets",
    "register",
    "resolve",
    "resolve_triplet_rule",
]
