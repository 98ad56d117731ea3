"""Miners: rules that select pairs or triplets from a batch. ``build(name, **kw)`` constructs one.

>>> miner = build("semihard", margin=0.1)
>>> triplets = miner(embeddings, labels)   # Triplets(anchor, positive, negative)
"""
from dml.mining.base import Miner, Pairs, Triplets
from dml.mining.registry import available, build, register

__all__ = ["Miner", "Pairs", "Triplets", "available", "build", "register"]
