"""Exact, chunked nearest-neighbour statistics: everything the retrieval metrics need, without an N×N matrix.

Ranking convention (used everywhere in :mod:`dml.eval`)
--------------------------------------------------------
For a query ``q`` the gallery is ranked **lexicographically by (−score, gallery index)**: higher score first, and
among exactly tied scores the item with the lower gallery index first. This makes every metric deterministic, also
for duplicated vectors or a constant embedding (where "the first neighbour" is otherwise whatever the k-NN library
happens to return). In self-retrieval the query itself is excluded **by index** (its own score is set to ``−inf``),
never by assuming that neighbour 0 is the query.

What is computed
----------------
:func:`rank_statistics` reduces the score matrix, one block of it at a time, to two small per-query results:

* ``first_rank[q]``: how many gallery items are ranked before q's first positive (capped at ``k_max``).
  ``R@k`` is a hit iff ``first_rank < k``, for every ``k`` at once, so no top-1000 search is needed. With
  ``best`` the highest positive score (lowest index among tied positives),
  ``first_rank = #(S > best) + #(S == best and index < best_index)``.
* ``top_relevance[q]``: whether each of the top ``r_max`` neighbours shares q's label (``r_max`` = the largest
  number of positives of any query); MAP@R and R-precision need nothing else.

Every score block is one ``torch`` matmul on whatever device the embeddings live on (CPU or CUDA; nothing in the
loop copies data to the host), and its size is bounded by ``max_bytes`` (256 MiB by default). Two fast exact routes:

**Rows** (query/gallery retrieval; self-retrieval with duplicated vectors): chunks of queries against the whole
gallery. Each row is cut into blocks of ``block`` consecutive gallery items and the block maxima are ranked by
(−max, block index); the top-``r`` items of the row provably lie in the first ``r`` blocks of that order (a block
ranked before the block of a top-``r`` item contains an item ranked before it), so the exact top-``r`` is a top-k
over the block maxima and one over ``r·block`` gathered candidates. The same blocks settle ``first_rank``: if every
block reaching ``best`` was gathered, the candidates contain every item ranked before the first positive; if
``k_max`` blocks exceed ``best``, the query misses at every ``k``; only the rows in between are counted over the
full row.

**Tiles** (self-retrieval, the default there): the score is symmetric, so the items are grouped by class into
tiles and every pair of tiles is multiplied **once**, its score matrix serving the rows of both tiles: half the
matmul work. The diagonal tiles hold every query's positives and come first; they fix each query's best positive,
its exact top list within the tile and its count there. The off-diagonal tiles add only negatives: rows whose
maximum in the tile reaches ``best`` add to ``first_rank`` (until it reaches ``k_max``), and rows whose maximum
reaches their current ``R_q``-th best score merge the tile's top ``r_max`` into their top list. Each score is
computed once, so every query ranks one fixed set of numbers and the result is exact.

**Dense** (``method="dense"``, the specification): :func:`dense_rank_statistics` builds the whole score matrix
and reads both results off a full stable sort of each row, straight from the definitions above. It needs
O(N_query·N_gallery) memory and refuses inputs whose matrix would not fit in ``max_bytes``; the two fast routes are
tested against it for exact equality.

Floating point: ties are decided on the computed scores. Both routes agree exactly with a brute-force ranking
whenever the arithmetic is exact, and otherwise up to rounding of near-equal scores. Duplicated vectors are the one
practical case where scores are equal in exact arithmetic but might round differently in matmul calls of different
shapes, so the automatic choice sends embeddings with duplicated rows (a constant or collapsed embedding, duplicate
images) to the rows route, where each query's scores come from a single matmul call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Default memory budget, in bytes, for one chunk's or tile's score matrix and its temporaries.
DEFAULT_MAX_BYTES = 256 * 2**20
#: Gallery items per block in the two-level top-k.
BLOCK = 64
#: Blocks gathered per row at least (more when a query has more positives than this).
COUNT_BLOCKS = 16
#: Elements per step of the counting loop (bounds its scratch memory).
_COUNT_ELEMENTS = 2**21
#: Length of the exact top list kept per row from the diagonal tile (tiles route).
_DIAGONAL_TOP = 16


def topk_lex(values: torch.Tensor, k: int, index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact top-``k`` of every row of ``values`` in the order (−value, index), sorted in that order.

    Args:
        values: ``(m, n)`` scores.
        k: How many to keep (clipped to ``n``).
        index: Distinct ids used to break ties, ``(n,)`` shared by all rows or ``(m, n)``; default the column number.

    Returns:
        ``(top_values, top_index)``, both ``(m, min(k, n))``; ``top_index`` holds ids from ``index``.

    ``torch.topk`` returns an arbitrary subset of the items tied at the cut, in arbitrary order; rows where a tie
    crosses the cut (the ``k``-th and ``(k+1)``-th largest values are equal) are redone with a full stable sort, and
    rows with ties inside the top ``k`` are re-sorted by index. Both are rare for real-valued embeddings; the result
    is exact always.
    """
    top_v, top_i, _ = _topk_set(values, k, index)
    if top_v.shape[1] > 1:
        rows = (top_v[:, 1:] == top_v[:, :-1]).any(dim=1).nonzero().squeeze(1)
        if rows.numel():
            top_v[rows], top_i[rows] = _lexsort_rows(top_v[rows], top_i[rows])
    return top_v, top_i


def _topk_set(
    values: torch.Tensor, k: int, index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The exact top-``k`` set under (−value, index), by descending value (ties in any order), and the
    ``(k+1)``-th largest value of each row (``None`` when ``k >= n``)."""
    m, n = values.shape
    k = min(int(k), n)
    if index is None:
        index = torch.arange(n, device=values.device)
    if k == n:
        full_index = index if index.dim() == 2 else index.unsqueeze(0).expand(m, n)
        v, i = _lexsort_rows(values, full_index)
        return v, i, None
    top_v, pos = values.topk(k + 1, dim=1, largest=True, sorted=True)
    next_v = top_v[:, k]
    top_v, pos = top_v[:, :k].contiguous(), pos[:, :k]
    top_i = index.gather(1, pos) if index.dim() == 2 else index[pos]
    rows = (top_v[:, k - 1] == next_v).nonzero().squeeze(1) if k > 0 else pos[:0, 0]
    if rows.numel():
        row_index = index[rows] if index.dim() == 2 else index.unsqueeze(0).expand(rows.numel(), n)
        fix_v, fix_i = _lexsort_rows(values[rows], row_index)
        top_v[rows] = fix_v[:, :k]
        top_i[rows] = fix_i[:, :k]
    return top_v, top_i, next_v


def _lexsort_rows(values: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (−value, index): stable sort by index, then stable sort by descending value."""
    order = index.argsort(dim=1, stable=True)
    values, index = values.gather(1, order), index.gather(1, order)
    order = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, order), index.gather(1, order)


@dataclass
class RankStatistics:
    """Per-query results of :func:`rank_statistics` (tensors on the embeddings' device).

    Attributes:
        num_positives: ``R_q``, the number of relevant gallery items (the query itself not counted).
        first_rank: Gallery items ranked before the first positive, capped at ``k_max``; ``k_max`` where
            ``num_positives == 0``. ``None`` unless requested.
        top_relevance: ``(N_query, r_max)`` bool, whether the i-th neighbour is relevant (always ``False`` beyond
            ``R_q``). ``None`` unless requested.
    """

    num_positives: torch.Tensor
    first_rank: torch.Tensor | None
    top_relevance: torch.Tensor | None


def auto_chunk_size(num_gallery: int, bytes_per_row: int, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Largest chunk of query rows whose score matrix and per-row temporaries fit in ``max_bytes`` (at least 1)."""
    return max(1, int(max_bytes) // max(1, int(bytes_per_row)))


def rank_statistics(
    query: torch.Tensor,
    gallery: torch.Tensor,
    query_codes: torch.Tensor,
    gallery_codes: torch.Tensor,
    *,
    exclude_self: bool,
    k_max: int | None,
    need_top_relevance: bool,
    offsets: torch.Tensor | None = None,
    chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    method: str = "auto",
    block: int = BLOCK,
    count_blocks: int = COUNT_BLOCKS,
) -> RankStatistics:
    """Exact per-query ranking statistics for the score ``query[i] @ gallery[j] - offsets[j]`` (higher = closer).

    Args:
        query: ``(Nq, D)`` float tensor.
        gallery: ``(Ng, D)`` float tensor on the same device and of the same dtype. With ``exclude_self`` it must be
            the query tensor itself (self-retrieval: query ``i`` is gallery item ``i``, removed from its own ranking).
        query_codes, gallery_codes: ``int64`` class codes on the same device.
        exclude_self: Self-retrieval.
        k_max: Largest ``k`` of Recall@k; ``None`` skips ``first_rank``.
        need_top_relevance: Compute ``top_relevance`` (MAP@R, R-precision).
        offsets: Optional ``(Ng,)`` per-gallery-item offset (``||g||²/2`` turns the dot product into a squared-L2
            ranking); in self-retrieval ``offsets[i] + offsets[j]`` is subtracted, which ranks the same.
        chunk_size: Query rows per chunk (rows route); the tiles route uses square tiles with as many scores,
            about ``sqrt(chunk_size * N)`` items a side. ``None`` derives it from ``max_bytes``.
        max_bytes: Memory budget for one chunk's or tile's score matrix and its temporaries.
        method: ``"auto"`` (tiles for self-retrieval when the largest class fits in a tile, else rows), ``"rows"``,
            ``"tiles"``, or ``"dense"`` (the reference: the full score matrix, small inputs only; see
            :func:`dense_rank_statistics`). All are exact and give the same results.
        block, count_blocks: Tuning knobs of the rows route (see the module docstring); exact for any value.
    """
    if method not in ("auto", "rows", "tiles", "dense"):
        raise ValueError(f"method must be 'auto', 'rows', 'tiles' or 'dense'; got {method!r}")
    if exclude_self and (query.shape != gallery.shape or query.data_ptr() != gallery.data_ptr()):
        raise ValueError("exclude_self=True needs the gallery to be the query tensor itself")
    if method == "tiles" and not exclude_self:
        raise ValueError("method='tiles' is for self-retrieval (exclude_self=True) only")
    if method == "dense":
        return dense_rank_statistics(
            query,
            gallery,
            query_codes,
            gallery_codes,
            offsets,
            exclude_self=exclude_self,
            k_max=k_max,
            need_top_relevance=need_top_relevance,
            max_bytes=max_bytes,
        )
    if exclude_self and method != "rows":
        tile = _tile_size(query, query_codes, need_top_relevance, chunk_size, max_bytes)
        if method == "auto" and tile is not None and _has_duplicate_rows(query):
            tile = None  # keep each query's scores in one matmul, so duplicates tie exactly (see _tile_statistics)
        if tile is not None or method == "tiles":
            tile = tile or int(torch.bincount(query_codes).max().item())
            return _tile_statistics(
                query,
                query_codes,
                offsets,
                k_max=k_max,
                need_top_relevance=need_top_relevance,
                tile=tile,
                max_bytes=max_bytes,
            )
    return _row_statistics(
        query,
        gallery,
        query_codes,
        gallery_codes,
        offsets,
        exclude_self=exclude_self,
        k_max=k_max,
        need_top_relevance=need_top_relevance,
        chunk_size=chunk_size,
        max_bytes=max_bytes,
        block=block,
        count_blocks=count_blocks,
    )


def dense_rank_statistics(
    query: torch.Tensor,
    gallery: torch.Tensor,
    query_codes: torch.Tensor,
    gallery_codes: torch.Tensor,
    offsets: torch.Tensor | None = None,
    *,
    exclude_self: bool,
    k_max: int | None,
    need_top_relevance: bool,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RankStatistics:
    """The specification of :func:`rank_statistics`: the full score matrix, one stable sort per row.

    With scores ``S[q, j] = query[q] · gallery[j] − offsets[j]``, the positives ``P_q = {j : c_g(j) = c_q(q)}``
    (without ``j = q`` in self-retrieval) and ``R_q = |P_q|``, query ``q`` ranks the gallery (without ``q`` itself
    in self-retrieval) as ``π_q(1), π_q(2), …`` in lexicographic order of ``(−S[q, j], j)``. Then

    * ``first_rank[q] = min(k_max, min{i : π_q(i + 1) ∈ P_q})``, and ``k_max`` when ``R_q = 0``;
    * ``top_relevance[q, i] = [π_q(i + 1) ∈ P_q and i < R_q]`` for ``0 ≤ i < r_max = max_q R_q``.

    Memory is O(N_query · N_gallery): inputs whose matrix and sort (about ``2·itemsize + 10`` bytes a score) exceed
    ``max_bytes`` are refused. Arguments as in :func:`rank_statistics`.
    """
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    needed = num_query * num_gallery * (2 * (torch.finfo(query.dtype).bits // 8) + 10)
    if needed > max_bytes:
        raise ValueError(
            f"method='dense' needs about {needed} bytes for the full score matrix, more than "
            f"max_bytes={max_bytes}. Use method='auto' (exact, memory-bounded) or raise max_bytes."
        )
    scores = query @ gallery.T
    if offsets is not None:
        scores = scores - offsets.unsqueeze(0)
    positive = query_codes.unsqueeze(1) == gallery_codes.unsqueeze(0)
    order = scores.sort(dim=1, descending=True, stable=True).indices  # equal scores keep ascending index
    if exclude_self:
        positive.fill_diagonal_(False)
        not_self = order != torch.arange(num_query, device=order.device).unsqueeze(1)
        order = order[not_self].view(num_query, num_gallery - 1)
    relevance = positive.gather(1, order)
    num_pos = positive.sum(dim=1)
    first_rank = top_rel = None
    if k_max is not None:
        first_hit = relevance.to(torch.int64).argmax(dim=1)  # the first True (0 when there is none)
        first_rank = torch.where(num_pos > 0, first_hit.clamp_max(k_max), torch.full_like(first_hit, k_max))
    if need_top_relevance:
        r_max = int(num_pos.max().item())
        top_rel = relevance[:, :r_max] & (torch.arange(r_max, device=order.device).unsqueeze(0) < num_pos.unsqueeze(1))
    return RankStatistics(num_positives=num_pos, first_rank=first_rank, top_relevance=top_rel)


@dataclass(frozen=True)
class _Positives:
    """Each query's positives as a run of ``by_code`` (gallery ids sorted by code, ascending index within a code).

    ``listed[q]`` gallery items carry q's code (in self-retrieval the query itself among them); ``num_pos`` is
    ``R_q``; ``max_listed`` the largest ``listed``.
    """

    by_code: torch.Tensor
    start: torch.Tensor
    listed: torch.Tensor
    num_pos: torch.Tensor
    max_listed: int


def _positive_runs(query_codes: torch.Tensor, gallery_codes: torch.Tensor, *, exclude_self: bool) -> _Positives:
    num_codes = int(torch.maximum(query_codes.max(), gallery_codes.max()).item()) + 1
    counts = torch.bincount(gallery_codes, minlength=num_codes)
    listed = counts[query_codes]
    return _Positives(
        by_code=gallery_codes.argsort(stable=True),
        start=(counts.cumsum(0) - counts)[query_codes],
        listed=listed,
        num_pos=listed - int(exclude_self),
        max_listed=int(listed.max().item()),
    )


@dataclass(frozen=True)
class _RowLayout:
    """Block structure and chunking of the rows route: ``kb`` blocks of ``block`` items gathered per row (``width``
    candidate columns), ``chunk_size`` query rows per score matrix, ``piece_rows`` rows per full-row count."""

    block: int
    full_blocks: int
    tail: int
    kb: int
    width: int
    chunk_size: int
    piece_rows: int


def _row_layout(
    num_query: int,
    num_gallery: int,
    itemsize: int,
    max_listed: int,
    r_top: int,
    *,
    chunk_size: int | None,
    max_bytes: int,
    block: int,
    count_blocks: int,
) -> _RowLayout:
    """The layout for ``r_top`` exact neighbours per row (0 without ``top_relevance``) within ``max_bytes``."""
    block = max(1, min(int(block), num_gallery))
    full_blocks, tail = divmod(num_gallery, block)
    num_blocks = full_blocks + (tail > 0)
    kb = min(num_blocks, max(int(count_blocks), r_top, 1))
    width = kb * block  # candidate columns per row; ids >= num_gallery stand for the missing end of the last block
    bytes_per_row = (
        num_gallery * itemsize
        + max_listed * (2 * 8 + itemsize + 2)
        + width * (3 * 8 + itemsize + 2)
        + num_blocks * (8 + itemsize)
    )
    if chunk_size is None:
        chunk_size = auto_chunk_size(num_gallery, bytes_per_row, max_bytes)
    return _RowLayout(
        block=block,
        full_blocks=full_blocks,
        tail=tail,
        kb=kb,
        width=width,
        chunk_size=max(1, min(int(chunk_size), num_query)),
        piece_rows=max(1, int(max_bytes) // 8 // max(1, num_gallery * itemsize)),
    )


def _row_statistics(
    query: torch.Tensor,
    gallery: torch.Tensor,
    query_codes: torch.Tensor,
    gallery_codes: torch.Tensor,
    offsets: torch.Tensor | None,
    *,
    exclude_self: bool,
    k_max: int | None,
    need_top_relevance: bool,
    chunk_size: int | None,
    max_bytes: int,
    block: int,
    count_blocks: int,
) -> RankStatistics:
    """Rows route: chunks of query rows against the whole gallery, two-level top-k (see the module docstring)."""
    device = query.device
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    positives = _positive_runs(query_codes, gallery_codes, exclude_self=exclude_self)
    num_pos = positives.num_pos
    r_max = int(num_pos.max().item())
    if r_max == 0:  # no query has a positive (e.g. no query label in the gallery): nothing to rank
        return RankStatistics(
            num_positives=num_pos,
            first_rank=torch.full_like(num_pos, k_max) if k_max is not None else None,
            top_relevance=torch.zeros(num_query, 0, dtype=torch.bool, device=device) if need_top_relevance else None,
        )
    layout = _row_layout(
        num_query,
        num_gallery,
        torch.finfo(query.dtype).bits // 8,
        positives.max_listed,
        r_max if need_top_relevance else 0,
        chunk_size=chunk_size,
        max_bytes=max_bytes,
        block=block,
        count_blocks=count_blocks,
    )
    first_rank = torch.empty(num_query, dtype=torch.int64, device=device) if k_max is not None else None
    top_rel = torch.zeros(num_query, r_max, dtype=torch.bool, device=device) if need_top_relevance else None
    buffer = torch.empty(layout.chunk_size, num_gallery, dtype=query.dtype, device=device)
    gallery_t = gallery.T
    offsets_row = offsets.unsqueeze(0) if offsets is not None else None

    for r0 in range(0, num_query, layout.chunk_size):
        r1 = min(r0 + layout.chunk_size, num_query)
        scores = torch.mm(query[r0:r1], gallery_t, out=buffer[: r1 - r0])
        if offsets_row is not None:
            scores.sub_(offsets_row)
        if exclude_self:
            rows = torch.arange(r1 - r0, device=device)
            scores[rows, rows + r0] = float("-inf")
        block_max, next_block_max, cand, cand_cols = _gather_candidates(scores, layout)
        if top_rel is not None and r_max > 0:
            _, top_idx = topk_lex(cand, r_max, cand_cols)
            top_rel[r0:r1] = _top_relevance(top_idx, gallery_codes, query_codes[r0:r1], num_pos[r0:r1])
        if first_rank is not None:
            first_rank[r0:r1] = _chunk_first_rank(
                scores,
                block_max,
                next_block_max,
                cand,
                cand_cols,
                _rows_of(positives, r0, r1),
                k_max=k_max,
                piece_rows=layout.piece_rows,
            )
    return RankStatistics(num_positives=num_pos, first_rank=first_rank, top_relevance=top_rel)


def _rows_of(positives: _Positives, r0: int, r1: int) -> _Positives:
    return _Positives(
        by_code=positives.by_code,
        start=positives.start[r0:r1],
        listed=positives.listed[r0:r1],
        num_pos=positives.num_pos[r0:r1],
        max_listed=positives.max_listed,
    )


def _gather_candidates(
    scores: torch.Tensor, layout: _RowLayout
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Rank each row's blocks by (−max, block index) and gather the scores of the first ``kb`` blocks.

    Returns the block maxima ``(c, num_blocks)``, each row's ``(kb+1)``-th largest block maximum (``None`` when
    every block is gathered), the candidates' scores and their gallery columns, both ``(c, width)`` (columns
    ``>= Ng`` pad the last block and score ``−inf``).
    """
    c, num_gallery = scores.shape
    block, full_blocks = layout.block, layout.full_blocks
    block_max = scores[:, : full_blocks * block].unflatten(1, (full_blocks, block)).amax(dim=2)
    if layout.tail:
        block_max = torch.cat([block_max, scores[:, full_blocks * block :].amax(dim=1, keepdim=True)], dim=1)
    _, top_blocks, next_block_max = _topk_set(block_max, layout.kb)
    in_block = torch.arange(block, device=scores.device)
    cand_cols = (top_blocks.unsqueeze(2) * block + in_block).reshape(c, layout.width)
    cand = scores.gather(1, cand_cols.clamp_max(num_gallery - 1))
    if layout.tail:
        cand.masked_fill_(cand_cols >= num_gallery, float("-inf"))
    return block_max, next_block_max, cand, cand_cols


def _chunk_first_rank(
    scores: torch.Tensor,
    block_max: torch.Tensor,
    next_block_max: torch.Tensor | None,
    cand: torch.Tensor,
    cand_cols: torch.Tensor,
    positives: _Positives,
    *,
    k_max: int,
    piece_rows: int,
) -> torch.Tensor:
    """``first_rank`` of one chunk's rows (``positives`` restricted to them).

    Rows where every block reaching ``best`` was gathered (the ``(kb+1)``-th block maximum is below it) are counted
    among the candidates; rows with ``k_max`` blocks above ``best`` miss at every k; the rest are counted over the
    full row.
    """
    num_gallery = scores.shape[1]
    valid = positives.num_pos > 0
    offs = torch.arange(positives.max_listed, device=scores.device)
    listed = offs.unsqueeze(0) < positives.listed.unsqueeze(1)
    pos_idx = positives.by_code[(positives.start.unsqueeze(1) + offs).clamp_max(num_gallery - 1)]
    best, best_idx, ties_pos = _best_positive(scores, pos_idx, listed, pos_idx, no_id=num_gallery)
    best = torch.where(valid, best, torch.full_like(best, float("inf")))
    b = best.unsqueeze(1)

    easy = next_block_max < best if next_block_max is not None else torch.ones_like(valid)
    rank = _count_before(cand, b, best_idx, ties_pos, cand_cols)
    rank = torch.where(easy, rank, torch.full_like(rank, k_max))
    hard = (~easy & valid).nonzero().squeeze(1)
    if hard.numel():
        hard = hard[(block_max[hard] > b[hard]).sum(dim=1) < k_max]
    column = torch.arange(num_gallery, device=scores.device)
    for piece in hard.split(piece_rows):
        rank[piece] = _count_before(scores[piece], b[piece], best_idx[piece], ties_pos[piece], column)
    return torch.where(valid, rank.clamp_max(k_max), torch.full_like(rank, k_max))


def _best_positive(
    scores: torch.Tensor, columns: torch.Tensor, listed: torch.Tensor, ids: torch.Tensor, *, no_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's best positive among ``scores[row, columns]`` where ``listed``: its score (``−inf`` if none), its
    id (the lowest of the ``ids`` tied at that score; ``no_id`` if none) and how many positives score exactly that."""
    pos_val = scores.gather(1, columns).masked_fill_(~listed, float("-inf"))
    best = pos_val.amax(dim=1)
    best_is = (pos_val == best.unsqueeze(1)) & listed
    best_id = torch.where(best_is, ids, no_id).amin(dim=1)
    return best, best_id, best_is.sum(dim=1)


def _top_relevance(
    top_ids: torch.Tensor, gallery_codes: torch.Tensor, query_codes: torch.Tensor, num_pos: torch.Tensor
) -> torch.Tensor:
    """Whether each listed neighbour shares the row's code, ``False`` beyond ``R_q`` (ids past the end never match)."""
    rel = gallery_codes[top_ids.clamp_max(gallery_codes.shape[0] - 1)] == query_codes.unsqueeze(1)
    rel &= torch.arange(top_ids.shape[1], device=top_ids.device).unsqueeze(0) < num_pos.unsqueeze(1)
    return rel


def _tile_size(
    x: torch.Tensor, codes: torch.Tensor, need_top_relevance: bool, chunk_size: int | None, max_bytes: int
) -> int | None:
    """Tile size for the tiles route, or ``None`` if a class is larger than a tile or the state would not fit."""
    itemsize = torch.finfo(x.dtype).bits // 8
    # A tile holds as many scores as a rows-route chunk: chunk_size × N, or half the budget.
    if chunk_size is not None:
        tile = max(1, math.isqrt(int(chunk_size) * x.shape[0]))
    else:
        tile = max(1, math.isqrt(int(max_bytes) // (2 * itemsize)))
    largest = int(torch.bincount(codes).max().item())
    state_bytes = x.shape[0] * (largest - 1) * (8 + itemsize) if need_top_relevance else 0
    if largest > tile or state_bytes > max_bytes:
        return None
    return tile


def _has_duplicate_rows(x: torch.Tensor) -> bool:
    """Whether two rows of ``x`` are bitwise equal (a random projection finds candidates, which are then checked)."""
    if x.shape[0] < 2:
        return False
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(x.shape[1], generator=generator, dtype=torch.float64).to(x.device)
    step = max(1, _COUNT_ELEMENTS // x.shape[1])  # float64 copies of a few rows at a time
    keys, order = torch.cat([x[r : r + step].to(torch.float64) @ direction for r in range(0, x.shape[0], step)]).sort()
    same_key = (keys[1:] == keys[:-1]).nonzero().squeeze(1)
    if same_key.numel() == 0:
        return False
    return bool((x[order[same_key]] == x[order[same_key + 1]]).all(dim=1).any())


@dataclass
class _TileState:
    """The tiles route's class-sorted order (position ``p`` holds item ``perm[p]``) and per-position running results.

    ``best``/``best_id``: the best positive's score and original index; ``count``: items ranked before it so far;
    ``top_v``/``top_i``: the exact top ``r_max`` so far (``None`` unless wanted; ``pos_r`` points at entry ``R_q``).
    """

    perm: torch.Tensor
    sorted_codes: torch.Tensor
    sorted_counts: torch.Tensor
    class_start: torch.Tensor
    num_pos: torch.Tensor
    valid: torch.Tensor
    tiles: list[tuple[int, int]]
    r_max: int
    pieces: int
    buffer: torch.Tensor
    half: torch.Tensor | None
    best: torch.Tensor
    best_id: torch.Tensor
    count: torch.Tensor
    top_v: torch.Tensor | None
    top_i: torch.Tensor | None
    pos_r: torch.Tensor | None


def _start_tiles(
    x: torch.Tensor, codes: torch.Tensor, offsets: torch.Tensor | None, *, tile: int, max_bytes: int, want_top: bool
) -> _TileState:
    """Sort the items by class, cut the order into tiles and set up the empty running results."""
    device, dtype, n = x.device, x.dtype, x.shape[0]
    counts = torch.bincount(codes)
    perm = codes.argsort(stable=True)
    sorted_codes = codes[perm]
    sorted_counts = counts[sorted_codes]
    num_pos = sorted_counts - 1
    r_max = int(num_pos.max().item())
    tiles = _greedy_tiles(counts[counts > 0].tolist(), tile)
    longest = max(e - s for s, e in tiles)
    want_top = want_top and r_max > 0
    return _TileState(
        perm=perm,
        sorted_codes=sorted_codes,
        sorted_counts=sorted_counts,
        class_start=(counts.cumsum(0) - counts)[sorted_codes],
        num_pos=num_pos,
        valid=num_pos > 0,
        tiles=tiles,
        r_max=r_max,
        pieces=max(1, int(max_bytes) // 8 // max(1, longest * (torch.finfo(dtype).bits // 8))),
        buffer=torch.empty(longest * longest, dtype=dtype, device=device),
        half=offsets[perm] if offsets is not None else None,
        best=torch.full((n,), float("inf"), dtype=dtype, device=device),
        best_id=torch.full((n,), n, dtype=torch.int64, device=device),
        count=torch.zeros(n, dtype=torch.int64, device=device),
        top_v=torch.full((n, r_max), float("-inf"), dtype=dtype, device=device) if want_top else None,
        top_i=(n + torch.arange(r_max, device=device)).repeat(n, 1) if want_top else None,  # placeholders rank last
        pos_r=(num_pos - 1).clamp_min(0).unsqueeze(1) if want_top else None,
    )


def _tile_statistics(
    x: torch.Tensor,
    codes: torch.Tensor,
    offsets: torch.Tensor | None,
    *,
    k_max: int | None,
    need_top_relevance: bool,
    tile: int,
    max_bytes: int,
) -> RankStatistics:
    """Tiles route for self-retrieval, score ``x[i] @ x[j] - offsets[i] - offsets[j]``.

    Works in class-sorted order (position ``p`` holds item ``perm[p]``; original order inside a class); tiles are
    runs of whole classes of at most ``tile`` items (a larger class gets a tile of its own). Ties are broken by the
    *original* index, so the results equal the rows route's.

    A query's scores come from several matmul calls of different shapes, and two calls may round the same
    mathematical value differently (by an ulp). That only matters for exact ties between different items, which
    real-valued embeddings have only when vectors are duplicated; ``method="auto"`` therefore sends embeddings with
    duplicated rows (a constant or collapsed embedding, duplicate images) to the rows route, where each query's
    scores come from one matmul call.
    """
    state = _start_tiles(x, codes, offsets, tile=tile, max_bytes=max_bytes, want_top=need_top_relevance)
    perm, tiles = state.perm, state.tiles
    # Phase 1, diagonal tiles: every positive of a tile's items lies inside the tile.
    for p0, p1 in tiles:
        _diagonal_tile(state, x, p0, p1, want_count=k_max is not None)
    # Phase 2: each off-diagonal pair once; its scores serve the rows of tile i and (transposed) those of tile j.
    for t, (p0, p1) in enumerate(tiles):
        x_i = x[perm[p0:p1]]
        for u0, u1 in tiles[t + 1 :]:
            scores = _tile_scores(state, p0, p1, x_i, u0, u1, x[perm[u0:u1]])
            _add_negatives(state, scores, p0, perm[u0:u1], k_max=k_max)
            _add_negatives(state, scores.T, u0, perm[p0:p1], k_max=k_max)
    return _tiles_in_original_order(state, codes, k_max=k_max, need_top_relevance=need_top_relevance)


def _tile_scores(
    state: _TileState, p0: int, p1: int, x_i: torch.Tensor, u0: int, u1: int, x_j: torch.Tensor
) -> torch.Tensor:
    """Scores of positions ``p0:p1`` (rows, vectors ``x_i``) against ``u0:u1`` (columns, ``x_j``), in the buffer."""
    out = torch.mm(x_i, x_j.T, out=state.buffer[: (p1 - p0) * (u1 - u0)].view(p1 - p0, u1 - u0))
    if state.half is not None:  # subtract offsets[i] + offsets[j] (a symmetric sum), a few rows at a time
        half, pieces = state.half, state.pieces
        for r in range(0, p1 - p0, pieces):
            out[r : r + pieces] -= half[p0 + r : min(p0 + r + pieces, p1)].unsqueeze(1) + half[u0:u1].unsqueeze(0)
    return out


def _diagonal_tile(state: _TileState, x: torch.Tensor, p0: int, p1: int, *, want_count: bool) -> None:
    """A tile against itself: its exact top list, and its rows' best positives with the items ranked before them."""
    ids = state.perm[p0:p1]
    x_i = x[ids]
    scores = _tile_scores(state, p0, p1, x_i, p0, p1, x_i)
    rows = torch.arange(p1 - p0, device=x.device)
    scores[rows, rows] = float("-inf")
    # The tile's exact top list; it also gives the count of rows whose best positive is in it.
    tv, ti = topk_lex(scores, max(state.r_max, _DIAGONAL_TOP), ids)
    r_max = state.r_max
    if state.top_v is not None:
        state.top_v[p0:p1, : min(r_max, tv.shape[1])] = tv[:, :r_max]
        state.top_i[p0:p1, : min(r_max, ti.shape[1])] = ti[:, :r_max]
    if want_count:
        _diagonal_count(state, scores, ti, p0, p1)


def _diagonal_count(state: _TileState, scores: torch.Tensor, top_ids: torch.Tensor, p0: int, p1: int) -> None:
    """Each row's best positive (all its positives are in its diagonal tile) and the tile's items ranked before it:
    its position in the tile's exact top list ``top_ids``, or, when it is not listed, a count over the row."""
    ids = state.perm[p0:p1]
    counts = state.sorted_counts[p0:p1]
    offs = torch.arange(int(counts.max().item()), device=scores.device)
    local = (state.class_start[p0:p1] - p0).unsqueeze(1) + offs
    rows = torch.arange(p1 - p0, device=scores.device)
    listed = (offs.unsqueeze(0) < counts.unsqueeze(1)) & (local != rows.unsqueeze(1))
    local = local.clamp_max(p1 - p0 - 1)
    tile_best, tile_best_id, ties_pos = _best_positive(scores, local, listed, ids[local], no_id=state.perm.shape[0])
    valid = state.valid[p0:p1]
    state.best_id[p0:p1] = tile_best_id
    state.best[p0:p1] = torch.where(valid, tile_best, torch.full_like(tile_best, float("inf")))
    found = top_ids == tile_best_id.unsqueeze(1)
    state.count[p0:p1] = found.to(torch.int64).argmax(dim=1)  # position in the exact top list
    rest = (~found.any(dim=1) & valid).nonzero().squeeze(1)
    for piece in rest.split(state.pieces):
        q = piece + p0
        state.count[q] = _count_before(
            scores[piece], state.best[q].unsqueeze(1), state.best_id[q], ties_pos[piece], ids
        )


def _add_negatives(
    state: _TileState, scores: torch.Tensor, s0: int, other_ids: torch.Tensor, *, k_max: int | None
) -> None:
    """Fold an off-diagonal tile (rows: positions ``s0:``, columns: items ``other_ids``, all negatives) into the
    rows' counts (rows whose maximum reaches ``best``, until ``k_max``) and top lists (rows whose maximum reaches
    their current ``R_q``-th best score)."""
    s1 = s0 + scores.shape[0]
    peak = scores.amax(dim=1)
    valid = state.valid[s0:s1]
    if k_max is not None:
        no_ties = torch.zeros(1, dtype=torch.int64, device=scores.device)
        need = valid & (state.count[s0:s1] < k_max) & (peak >= state.best[s0:s1])
        for piece in need.nonzero().squeeze(1).split(state.pieces):
            q = piece + s0
            state.count[q] += _count_before(
                scores[piece], state.best[q].unsqueeze(1), state.best_id[q], no_ties, other_ids
            )
    if state.top_v is not None:
        theta = state.top_v[s0:s1].gather(1, state.pos_r[s0:s1]).squeeze(1)
        need = valid & (peak >= theta)
        for piece in need.nonzero().squeeze(1).split(state.pieces):
            q = piece + s0
            nv, ni = topk_lex(scores[piece], state.r_max, other_ids)
            state.top_v[q], state.top_i[q] = topk_lex(
                torch.cat([state.top_v[q], nv], dim=1), state.r_max, torch.cat([state.top_i[q], ni], dim=1)
            )


def _tiles_in_original_order(
    state: _TileState, codes: torch.Tensor, *, k_max: int | None, need_top_relevance: bool
) -> RankStatistics:
    """The running results, finished and put back from class-sorted into the original order."""
    n, device, perm = codes.shape[0], codes.device, state.perm
    num_pos = torch.empty_like(state.num_pos)
    num_pos[perm] = state.num_pos
    first_rank = top_rel = None
    if k_max is not None:
        first_rank = torch.empty(n, dtype=torch.int64, device=device)
        first_rank[perm] = torch.where(state.valid, state.count.clamp_max(k_max), torch.full_like(state.count, k_max))
    if need_top_relevance:
        top_rel = torch.zeros(n, state.r_max, dtype=torch.bool, device=device)
        if state.top_i is not None:
            top_rel[perm] = _top_relevance(state.top_i, codes, state.sorted_codes, state.num_pos)
    return RankStatistics(num_positives=num_pos, first_rank=first_rank, top_relevance=top_rel)


def _greedy_tiles(class_sizes: list[int], tile: int) -> list[tuple[int, int]]:
    """Consecutive runs of whole classes, each at most ``tile`` items unless one class alone is larger."""
    tiles: list[tuple[int, int]] = []
    start = end = 0
    for size in class_sizes:
        if end > start and end - start + size > tile:
            tiles.append((start, end))
            start = end
        end += size
    if end > start:
        tiles.append((start, end))
    return tiles


def _count_before(
    values: torch.Tensor, best: torch.Tensor, best_idx: torch.Tensor, ties_pos: torch.Tensor, ids: torch.Tensor
) -> torch.Tensor:
    """Per row ``#(values > best) + #(values == best and id < best_idx)``: the items ranked before the best positive.

    ``best`` is ``(m, 1)``; ``ids`` the gallery index of each column, ``(n,)`` or ``(m, n)``; ``ties_pos`` the
    number of positives among the columns scoring exactly ``best``. Negatives tied with ``best`` are rare, so the
    ``>=`` and ``>`` counts flag the rows that have them and only those rows pay for the index comparison.

    The comparisons are written into a small float buffer and summed a few rows at a time: summing a bool tensor
    would first materialise an integer copy of it (4-8 times its size), and float sums are the fastest reduction.
    Counts up to 2**24 are exact in float32.
    """
    m, n = values.shape
    step = max(1, _COUNT_ELEMENTS // max(n, 1))
    scratch = values.new_empty(min(step, m), n)
    greater = values.new_empty(m)
    tied = values.new_empty(m)
    for r in range(0, m, step):
        part, b, out = values[r : r + step], best[r : r + step], scratch[: min(step, m - r)]
        torch.sum(torch.gt(part, b, out=out), dim=1, out=greater[r : r + step])
        torch.sum(torch.ge(part, b, out=out), dim=1, out=tied[r : r + step])
    count = greater.to(torch.int64)
    tied = tied.to(torch.int64) - count
    fix = (tied > ties_pos).nonzero().squeeze(1)
    if fix.numel():
        row_ids = ids[fix] if ids.dim() == 2 else ids.unsqueeze(0)
        earlier = (values[fix] == best[fix]) & (row_ids < best_idx[fix].unsqueeze(1))
        count[fix] += earlier.sum(dim=1)
    return count
