"""Diagnostics of a trained embedding (gradient-free, opt-in).

* :mod:`dml.diagnostics.triplet_space` — each anchor's easiest positive against its hardest negative
  (Xuan et al., ECCV 2020), and the hard-triplet ratio ``hn_ratio``.
"""
from dml.diagnostics.triplet_space import TripletSpace, hard_triplet_ratio, plot_triplet_space, triplet_space

__all__ = ["TripletSpace", "hard_triplet_ratio", "plot_triplet_space", "triplet_space"]
