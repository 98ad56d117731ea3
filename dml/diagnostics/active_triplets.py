"""How many triplets of a batch actually carry gradient under a loss and its selection rule.

Liu, Xuan, Zhang, Stylianou & Pless ("Visualizing How Embeddings Generalize", ICML 2019 workshop, arXiv:1909.07464)
find that the best triplet-selection strategies "focus on a few, well selected triplets". This counts them. A batch
of ``N`` images has ``T = sum_a |P_a| |N_a|`` valid triplets ``(a, p, n)``; a loss's selection rule (its miner)
picks some of them, and of those a triplet is **active** when its own term has a non-zero gradient:

* triplet loss ``[S_an - S_ap + m]_+``: selected and ``S_an - S_ap + m > 0`` (batch-all: every triplet is
  selected);
* margin loss (Wu et al. 2017) on mined triplets: ``D_ap - beta + alpha > 0`` or ``beta - D_an + alpha > 0``;
* EPHN, SCT and their baselines: every selected triplet (the NCA softmax and SCT's ``gamma S_an`` never have a zero
  gradient).

:func:`active_triplets` returns ``(active, selected, T)``. It mines with the loss's own miner on the detached
similarity matrix; random number state (the global torch generator and a seeded miner's generators) is restored
afterwards, so calling it just before the loss on the same batch sees the triplets the loss will use and never
changes training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dml.losses.ephn import EPHNLoss
from dml.losses.margin import MarginLoss
from dml.losses.sct import SCTLoss
from dml.losses.triplet import TripletLoss, batch_all_triplet_sums
from dml.mining import Triplets
from dml.similarity import cosine_similarity_matrix, euclidean_from_similarity, pair_masks

__all__ = ["ActiveTriplets", "active_triplets"]


@dataclass(frozen=True)
class ActiveTriplets:
    """Counts for one batch: ``active <= selected <= valid``; ``fraction = active / valid`` (0 if none valid)."""

    active: int
    selected: int
    valid: int

    @property
    def fraction(self) -> float:
        return self.active / self.valid if self.valid else 0.0


@contextlib.contextmanager
def _rng_preserved(miner: Any, device: torch.device) -> Iterator[None]:
    generators = [g for g in [getattr(miner, "generator", None), *getattr(miner, "_generators", {}).values()] if g]
    states = [g.get_state() for g in generators]
    before = set(getattr(miner, "_generators", {}))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield
    for generator, state in zip(generators, states):
        generator.set_state(state)
    for key in set(getattr(miner, "_generators", {})) - before:
        del miner._generators[key]  # a generator first created here starts again from its seed


def _selected_triplets(loss: Any, embeddings: Tensor, sim: Tensor, labels: Tensor) -> Triplets:
    miner = loss.baseline.miner if isinstance(loss, SCTLoss) and loss.mode != "sct" else loss.miner
    with _rng_preserved(miner, embeddings.device):
        miner.observe(embeddings)
        mined = miner.mine(sim, labels)
    if not isinstance(mined, Triplets):
        raise TypeError(f"active_triplets counts triplets; the miner {type(miner).__name__} returned pairs.")
    return mined


def active_triplets(loss: Any, embeddings: Tensor, labels: Any) -> ActiveTriplets:
    """Active, selected and valid triplets of one batch under ``loss`` (see the module docstring).

    Args:
        loss: a :class:`~dml.losses.TripletLoss`, :class:`~dml.losses.MarginLoss` with a triplet miner,
            :class:`~dml.losses.EPHNLoss` or :class:`~dml.losses.SCTLoss`.
        embeddings: the batch's (N, D) embeddings (detached here).
        labels: N class ids.
    """
    embeddings = embeddings.detach().float()
    labels = torch.as_tensor(labels, device=embeddings.device).long()
    sim = cosine_similarity_matrix(embeddings)
    pos, neg = pair_masks(labels)
    valid = int((pos.sum(dim=1) * neg.sum(dim=1)).sum())
    if isinstance(loss, TripletLoss) and loss.miner is None:
        _, active, considered = batch_all_triplet_sums(sim, labels, loss.margin, semihard=loss.triplets == "semihard")
        return ActiveTriplets(int(active), int(considered), valid)
    if isinstance(loss, MarginLoss) and loss.miner is None:
        raise ValueError("The margin loss without a miner sums over pairs, not triplets; give it a triplet miner.")
    if not isinstance(loss, (TripletLoss, MarginLoss, EPHNLoss, SCTLoss)):
        raise TypeError(
            f"active_triplets supports the triplet, margin, EPHN and SCT losses; got {type(loss).__name__}."
        )
    mined = _selected_triplets(loss, embeddings, sim, labels)
    s_ap, s_an = sim[mined.anchor, mined.positive], sim[mined.anchor, mined.negative]
    if isinstance(loss, TripletLoss):
        carries = s_an - s_ap + loss.margin > 0
    elif isinstance(loss, MarginLoss):
        beta = loss.beta.detach().to(sim.dtype)
        beta = beta[labels[mined.anchor]] if loss.num_classes is not None else beta.expand(len(mined.anchor))
        d_ap, d_an = euclidean_from_similarity(s_ap), euclidean_from_similarity(s_an)
        carries = (d_ap - beta + loss.margin > 0) | (beta - d_an + loss.margin > 0)
    else:
        carries = torch.ones_like(s_ap, dtype=torch.bool)
    return ActiveTriplets(int(carries.sum()), len(mined.anchor), valid)
