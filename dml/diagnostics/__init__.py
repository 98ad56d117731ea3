"""Diagnostics of a trained embedding (gradient-free, opt-in).

* :mod:`dml.diagnostics.triplet_space` — each anchor's easiest positive against its hardest negative
  (Xuan et al., ECCV 2020), and the hard-triplet ratio ``hn_ratio``.
* :mod:`dml.diagnostics.similarity_histograms` — S_ap / S_an histograms on fixed bins and the "Margin" of the EPHN
  code (Xuan et al., WACV 2020).
* :mod:`dml.diagnostics.spectrum` — spectral decay ρ of the embedding matrix (Roth et al., ICML 2020).
* :mod:`dml.diagnostics.density` — π_intra, π_inter and π_ratio with the cosine distance (Roth et al., ICML 2020).
* :mod:`dml.diagnostics.tsne` — a joint t-SNE map of training and test embeddings (van der Maaten & Hinton, 2008),
  drawn as one map or as the released train / both / test panels.
* :mod:`dml.diagnostics.yoked_tsne` — yoked t-SNE maps of several embeddings, pinned to a reference map (Liu et al.,
  ICML 2019 workshop).
* :mod:`dml.diagnostics.similarity_scatter` — nearest same-class against nearest other-class similarity per image
  (Liu et al., 2019).
* :mod:`dml.diagnostics.distance_distribution` — pairwise distances against the law ``q_n(d)`` of uniform points on
  the sphere, with a KS test (Wu et al., ICCV 2017).
* :mod:`dml.diagnostics.gradient_variance` — direction variance of pair gradients against the pair's distance
  (Wu et al., 2017).
* :mod:`dml.diagnostics.active_triplets` — how many triplets of a batch carry gradient under a loss.
* :mod:`dml.diagnostics.per_epoch` — all of the numbers above as JSON-safe values for the trainer's
  ``on_epoch_end`` hook (:func:`diagnostics_callback`), and their plots over epochs.
"""

from dml.diagnostics.active_triplets import ActiveTriplets, active_triplets
from dml.diagnostics.density import EmbeddingDensity, embedding_density, plot_density
from dml.diagnostics.distance_distribution import (
    DistanceDistribution,
    distance_distribution,
    plot_distance_distribution,
    sphere_distance_cdf,
    sphere_distance_density,
)
from dml.diagnostics.gradient_variance import GradientVariance, pair_gradient_variance
from dml.diagnostics.per_epoch import (
    diagnostics_callback,
    embedding_diagnostics,
    epoch_diagnostics,
    margin_beta,
    mean_pairwise_similarity,
    plot_epoch_curves,
    plot_epoch_diagnostics,
)
from dml.diagnostics.similarity_histograms import (
    SimilarityHistograms,
    anchor_histograms,
    histogram_edges,
    histograms_from_history,
    plot_similarity_histograms,
    similarity_histograms,
)
from dml.diagnostics.similarity_scatter import SimilarityScatter, plot_similarity_scatter, similarity_scatter
from dml.diagnostics.spectrum import SpectralDecay, plot_spectrum, spectral_decay
from dml.diagnostics.triplet_space import TripletSpace, hard_triplet_ratio, plot_triplet_space, triplet_space
from dml.diagnostics.tsne import JointTSNE, joint_tsne, plot_joint_panels, plot_joint_tsne
from dml.diagnostics.yoked_tsne import (
    YokedTSNE,
    map_displacement,
    plot_yoked_tsne,
    yoke_objective,
    yoked_joint_tsne,
    yoked_tsne,
)

__all__ = [
    "ActiveTriplets",
    "DistanceDistribution",
    "EmbeddingDensity",
    "GradientVariance",
    "JointTSNE",
    "SimilarityHistograms",
    "SimilarityScatter",
    "SpectralDecay",
    "TripletSpace",
    "YokedTSNE",
    "active_triplets",
    "anchor_histograms",
    "diagnostics_callback",
    "distance_distribution",
    "embedding_density",
    "embedding_diagnostics",
    "epoch_diagnostics",
    "hard_triplet_ratio",
    "histogram_edges",
    "histograms_from_history",
    "joint_tsne",
    "map_displacement",
    "margin_beta",
    "mean_pairwise_similarity",
    "pair_gradient_variance",
    "plot_density",
    "plot_distance_distribution",
    "plot_epoch_curves",
    "plot_epoch_diagnostics",
    "plot_joint_panels",
    "plot_joint_tsne",
    "plot_similarity_histograms",
    "plot_similarity_scatter",
    "plot_spectrum",
    "plot_triplet_space",
    "plot_yoked_tsne",
    "similarity_histograms",
    "similarity_scatter",
    "spectral_decay",
    "sphere_distance_cdf",
    "sphere_distance_density",
    "triplet_space",
    "yoke_objective",
    "yoked_joint_tsne",
    "yoked_tsne",
]
