"""Released variants of three diagnostics, each against my reading of the released code.

* ``embedding_density(singletons="released")``: ``metrics/dists.py`` (``dists@intra``) of
  github.com/Confusezius/Revisiting_Deep_Metric_Learning_PyTorch (commit efddbf23ccbe);
* ``spectral_decay(svd="truncated")``: ``metrics/rho_spectrum.py`` of the same repository, NumPy-features path;
* ``triplet_space(validity="released")``: ``hn_ratio`` of ``SCTLoss`` in ``_code/Loss.py`` of
  github.com/littleredxh/HardNegative (commit f5f392377fd0), and its precision (float64 stays float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial import distance
from scipy.stats import entropy
from sklearn.decomposition import TruncatedSVD

from dml.diagnostics import embedding_density, spectral_decay, triplet_space

# ----------------------------------------------------------------------------------------------- π_intra singletons


def released_intra(features, labels):
    """``dists@intra``; the self-distances are set to their exact value 0 (SciPy's cosine distance of a vector to
    itself can be ±1e-16, which turns a singleton's 0/0 into ±inf instead of NaN)."""
    intra = []
    for label in np.unique(labels):
        members = features[labels == label]
        pairwise = distance.cdist(members, members, "cosine")
        np.fill_diagonal(pairwise, 0.0)
        with np.errstate(invalid="ignore"):
            intra.append(np.sum(pairwise) / (len(members) ** 2 - len(members)))
    intra = np.array(intra)
    maxval = np.max(intra[1 - np.isnan(intra)])  # the release's integer index
    intra[np.isnan(intra)] = maxval
    return np.mean(intra)


def labelled(sizes, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return rng.normal(size=(labels.size, 6)), labels


@pytest.mark.parametrize("sizes", [[4, 5, 1, 6, 1], [1, 5, 4], [5, 1, 4], [3, 4, 5]])
def test_released_singleton_rule_is_what_the_released_code_computes(sizes):
    x, y = labelled(sizes, 0)
    got = embedding_density(x, y, singletons="released").pi_intra
    expected = released_intra(x, y)
    if np.isnan(expected):  # a singleton among the first two classes
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_released_rule_differs_from_the_intent_when_a_singleton_is_present():
    x, y = labelled([4, 5, 1, 6, 8], 1)
    x[y <= 1] = 0.1 * x[y <= 1] + 3.0  # classes 0 and 1 tight, so the largest π_c is another class's
    density = embedding_density(x, y, singletons="released")
    intent = embedding_density(x, y, singletons="max")
    c = density.class_intra
    assert density.pi_intra == pytest.approx(np.mean([c[0], c[1], max(c[0], c[1]), c[3], c[4]]), rel=1e-12)
    assert density.pi_intra != pytest.approx(intent.pi_intra)
    no_singleton = labelled([3, 4, 5], 2)
    assert embedding_density(*no_singleton, singletons="released").pi_intra == pytest.approx(
        embedding_density(*no_singleton).pi_intra, rel=1e-12
    )


# --------------------------------------------------------------------------------------------- ρ, truncated SVD


def released_rho(features, mode):
    s = TruncatedSVD(n_components=features.shape[1] - 1, n_iter=7, random_state=42).fit(features).singular_values_
    s = s[abs(mode) - 1 :]
    s_norm, uniform = s / np.sum(s), np.ones(len(s)) / len(s)
    return entropy(s_norm, uniform) if mode < 0 else entropy(uniform, s_norm)


@pytest.mark.parametrize("k, reverse", [(1, False), (2, False), (1, True)])
def test_truncated_svd_is_the_released_default_path(k, reverse):
    x = F.normalize(torch.randn(300, 32, generator=torch.Generator().manual_seed(0)), dim=1).double().numpy()
    got = spectral_decay(x, k=k, reverse=reverse, svd="truncated")
    assert len(got.singular_values) == 31
    assert got.rho == pytest.approx(released_rho(x, -k if reverse else k), rel=1e-9)
    exact = spectral_decay(x, k=k, reverse=reverse)
    assert got.rho != pytest.approx(exact.rho, rel=1e-6), "dropping the smallest singular value changes ρ"


def test_truncated_svd_needs_enough_embeddings():
    with pytest.raises(ValueError, match="D - 1 = 7 components"):
        spectral_decay(np.random.default_rng(0).normal(size=(5, 8)), svd="truncated")
    with pytest.raises(ValueError, match="svd method"):
        spectral_decay(np.eye(3), svd="randomized")


# ------------------------------------------------------------------------------------- hard-triplet ratio validity


def released_hn_ratio(fvec, labels):
    n = len(labels)
    f = F.normalize(fvec, p=2, dim=1)
    sim = (f @ f.T).fill_diagonal_(-1)
    same = (labels[:, None] == labels[None, :]).fill_diagonal_(False)
    diff = labels[:, None] != labels[None, :]
    pos = sim.clone()
    pos[diff] = -1
    pos[pos > 0.9999] = -1
    v_pos, i_pos = pos.max(1)
    neg = sim.clone()
    neg[same] = -1
    v_neg, i_neg = neg.max(1)
    valid = (v_pos > -1) & (v_pos < 1) & (v_neg > -1) & (v_neg < 1)
    rows = torch.arange(n)
    return (sim[rows, i_neg] > sim[rows, i_pos])[valid].double().mean().item(), int(valid.sum())


def test_released_validity_drops_anchors_at_similarity_one():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(20, 5, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4])
    x[4] = x[0]  # an anchor of class 0 and one of class 1 coincide: their hardest negative has S_an = 1
    x[8] = -x[12]  # S = -1 exactly between two other classes (not the maximum, so it changes nothing)
    ratio, count = released_hn_ratio(x, y)
    space = triplet_space(x, y, validity="released")
    assert int(space.valid.sum()) == count == 18
    assert space.hard_ratio == pytest.approx(ratio, abs=1e-12)
    assert int(triplet_space(x, y).valid.sum()) == 20, "the default counts the two coinciding anchors"


def test_float64_embeddings_stay_float64():
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = np.repeat(np.arange(4), 3)
    space = triplet_space(x, y)
    assert space.s_ap.dtype == np.float64
    reference = F.normalize(x, dim=1)
    sim = reference @ reference.T
    expected = max(sim[0, j].item() for j in (1, 2))
    assert space.s_ap[0] == pytest.approx(expected, abs=1e-15)
    assert triplet_space(x.float(), y).s_ap.dtype == np.float32
    with pytest.raises(ValueError, match="validity rule"):
        triplet_space(x, y, validity="strict")
