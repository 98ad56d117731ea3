"""Diagnostics of a trained embedding (gradient-free, opt-in).

* :mod:`dml.diagnostics.triplet_space` — each anchor's easiest positive against its hardest negative
  (Xuan et al., ECCV 2020), and the hard-triplet ratio ``hn_ratio``.
* :mod:`dml.diagnostics.similarity_histograms` — S_ap / S_an histograms on fixed bins and the "Margin" of the EPHN
  code (Xuan et al., WACV 2020).
* :mod:`dml.diagnostics.spectrum` — spectral decay ρ of the embedding matrix (Roth et al., ICML 2020).
* :mod:`dml.diagnostics.density` — π_intra, π_inter and π_ratio with the cosine distance (Roth et al., ICML 2020).
* :mod:`dml.diagnostics.tsne` — a joint t-SNE map of training and test embeddings (van der Maaten & Hinton, 2008).
* :mod:`dml.diagnostics.per_epoch` — all of the numbers above as JSON-safe values for the trainer's
  ``on_epoch_end`` hook (:func:`diagnostics_callback`), and their plots over epochs.
"""

from dml.diagnostics.density import EmbeddingDensity, embedding_density, plot_density
from dml.diagnostics.per_epoch import (
    diagnostics_callback,
    embedding_diagnostics,
    epoch_diagnostics,
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
from dml.diagnostics.spectrum import SpectralDecay, plot_spectrum, spectral_decay
from dml.diagnostics.triplet_space import TripletSpace, hard_triplet_ratio, plot_triplet_space, triplet_space
from dml.diagnostics.tsne import JointTSNE, joint_tsne, plot_joint_tsne

__all__ = [
    "EmbeddingDensity",
    "JointTSNE",
    "SimilarityHistograms",
    "SpectralDecay",
    "TripletSpace",
    "anchor_histograms",
    "diagnostics_callback",
    "embedding_density",
    "embedding_diagnostics",
    "epoch_diagnostics",
    "hard_triplet_ratio",
    "histogram_edges",
    "histograms_from_history",
    "joint_tsne",
    "mean_pairwise_similarity",
    "plot_density",
    "plot_epoch_curves",
    "plot_epoch_diagnostics",
    "plot_joint_tsne",
    "plot_similarity_histograms",
    "plot_spectrum",
    "plot_triplet_space",
    "similarity_histograms",
    "spectral_decay",
    "triplet_space",
]
