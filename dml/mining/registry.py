"""The miner registry: ``build(name, **hyperparameters)`` like :func:`dml.losses.build`."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.utils.registry import Registry, did_you_mean, keyword_names

_MINERS: Registry[type[Miner]] = Registry("miner")
M = TypeVar("M", bound=type[Miner])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make ``build(name, **hyperparameters)`` construct this miner."""
    return _MINERS.register(name)


def available() -> list[str]:
    """Registered miner names."""
    return _MINERS.available()


def build(name: str, **hyperparameters: Any) -> Miner:
    """Construct the miner registered as ``name``."""
    cls = _MINERS.get(name)
    valid = keyword_names(cls, keyword_only=True) or []
    for key in hyperparameters:
        if key not in valid:
            raise ValueError(f"Unknown hyperparameter {key!r} for miner {name!r}.{did_you_mean(key, valid)} "
                             f"Valid hyperparameters: {valid}.")
    return cls(**hyperparameters)


def resolve(miner: str | Mapping[str, Any] | Miner | None) -> Miner | None:
    """A loss's ``miner=`` argument as a :class:`Miner`: ``None``, an instance, a registered name, or a mapping
    ``{"name": ..., **hyperparameters}`` (the form a YAML config gives)."""
    if miner is None or isinstance(miner, Miner):
        return miner
    if isinstance(miner, str):
        return build(miner)
    if isinstance(miner, Mapping):
        if "name" not in miner:
            raise ValueError(f"A miner given as a mapping needs a 'name' key (one of {available()}); got keys "
                             f"{sorted(miner)}.")
        options = {key: value for key, value in miner.items() if key != "name"}
        return build(miner["name"], **options)
    raise TypeError(f"miner must be None, a registered miner name ({available()}), a mapping with a 'name' key, "
                    f"or a dml.mining.Miner instance; got {type(miner).__name__}.")


def resolve_triplet_rule(triplets: str, miner: str | Mapping[str, Any] | Miner | None, *,
                         loss: str) -> Miner | None:
    """The miner of a triplet-based loss with a ``triplets="all"|"hardest"|...`` rule and a ``miner=`` option: the
    explicit miner, the batch-hard miner for ``"hardest"``, or ``None`` (the loss's own all-triplets path)."""
    if miner is not None and triplets != "all":
        raise ValueError(f"Pass either triplets={triplets!r} or miner=... to the {loss} loss, not both: a miner "
                         "replaces the triplets rule.")
    if triplets == "hardest":
        from dml.mining.hardest_negative import HardestNegativeMiner

        return HardestNegativeMiner(positives="hardest")
    return resolve(miner)


def mine_triplets(miner: Miner, sim: Tensor, labels: Tensor, *, loss: str) -> Triplets:
    """``miner.mine(sim, labels)``, refusing a pair miner with an error that names the loss."""
    mined = miner.mine(sim, labels)
    if not isinstance(mined, Triplets):
        raise TypeError(f"The {loss} loss needs a triplet miner; {type(miner).__name__} returns "
                        f"{type(mined).__name__}. Use e.g. miner='semihard' or 'hardest_negative'.")
    return mined
