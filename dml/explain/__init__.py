"""Where similarity comes from: spatial decompositions of the similarity of two images (Stylianou, Souvenir &
Pless, "Visualizing Deep Similarity Networks", WACV 2019).

>>> maps = similarity_maps(model, image_a, image_b)      # SimilarityMaps(map_a, map_b, similarity, exact, ...)
>>> maps.map_a.sum(), maps.similarity                    # equal: the maps are an exact decomposition
>>> region_similarity(maps, object_mask)                 # s_R: the similarity carried by a part of image A
>>> plot_similarity_maps(image_a, image_b, maps)         # the two maps over their images

* :mod:`dml.explain.contributions` — each pooled embedding as a sum of per-cell contributions (average, max and GeM
  pooling, the linear head pushed inside the sum, its bias spread over the cells).
* :mod:`dml.explain.maps` — the cell-to-cell matrix and the heat maps of a pair, which sum to the cosine.
* :mod:`dml.explain.region` — region queries and the search by a part of an image.
* :mod:`dml.explain.scores` — mass on the object and the pointing game against a known object mask.
* :mod:`dml.explain.plot` — heat maps overlaid on their images.
"""

from dml.explain.contributions import (
    BIAS_MODES,
    POOLINGS,
    Contributions,
    cell_contributions,
    head_contributions,
    head_pooling,
)
from dml.explain.maps import SimilarityMaps, maps_from_contributions, model_contributions, pair_maps, similarity_maps
from dml.explain.plot import as_display_image, overlay, plot_similarity_maps
from dml.explain.region import cell_weights, region_query, region_search, region_similarity
from dml.explain.scores import cell_coverage, mass_on_mask, pointing_game

__all__ = [
    "BIAS_MODES",
    "POOLINGS",
    "Contributions",
    "SimilarityMaps",
    "as_display_image",
    "cell_contributions",
    "cell_coverage",
    "cell_weights",
    "head_contributions",
    "head_pooling",
    "maps_from_contributions",
    "mass_on_mask",
    "model_contributions",
    "overlay",
    "pair_maps",
    "plot_similarity_maps",
    "pointing_game",
    "region_query",
    "region_search",
    "region_similarity",
    "similarity_maps",
]
