"""Neuron graphs of a BDH model: ``G_x = D_x E`` and ``G_y = D_y E``, as excitatory and inhibitory circuits.

**Orientation, used everywhere in bdh_graph.** A graph is a sparse matrix ``A`` with ``A[i, j]`` = weight of
the edge ``i -> j``: rows are presynaptic neurons, columns postsynaptic ones. In the notation of docs/model.md the edge
``i -> j`` carries ``G[j, i]``, so ``A = G^T``. The out-degree of ``i`` counts the entries of row ``i``, the
in-degree of ``j`` those of column ``j``.

Two forms (docs/model.md section 4.1, and the paper's section 5.5):

- ``form="analysis"`` (the paper's section 5.5): ``G = D E``, n x n, no centring, no input neurons,
  so ``A = E^T D^T``; with the checkpoint's names ``A = decoder @ encoder_flat`` where
  ``encoder_flat = encoder.permute(1, 0, 2).reshape(d, h*N)``.
- ``form="exact"``: ``G = D E_ext`` with ``E_ext = C [E | embed^T]`` and ``C = I - 11^T/d`` the mean-centring
  over d (LayerNorm's mean subtraction: ``C = I`` in the Normfree variant); ``A`` is (n+V) x n: rows are the n
  model neurons, then the V input neurons (token ``t`` is neuron ``n + t``).

A head restricts the columns to that head's neurons ``head*N .. (head+1)*N - 1``; in the analysis form the rows
too (the diagonal block), in the exact form the rows stay all n+V presynaptic neurons.

Signed weights split into two non-negative circuits, ``G^e = max(G, 0)`` and ``G^i = max(-G, 0)``
(docs/model.md 4.1), each pruned on its own (docs/model.md 4.6):

- ``Threshold(beta)``: keep ``G >= beta`` (excitatory) and ``G <= -beta`` (inhibitory);
- ``TopK(k)``: for each postsynaptic neuron its k strongest excitatory and k strongest inhibitory inputs;
- ``Strongest(m)``: the m strongest edges of each circuit in the whole graph (an edge count, not a weight; of
  equal weights the smaller (pre, post) pair first);
- ``None``: every non-zero entry (dense, for small n only).

Extraction is tiled, ``A = pre @ post`` one block of rows (threshold, strongest) or columns (top-k) at a time,
so a dense n x n matrix is never held: memory is one block (``block_bytes``) plus the edges kept. The tiles are
independent tasks, run in this process or on Dask workers (``scheduler``, ``bdh_graph.distributed``) with the
same result.
:func:`extract` prunes by options instead of a rule, at the paper's edge density unless told otherwise.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from scipy import sparse

from ..distributed import engine
from .pruning import Prune, Strongest, Threshold, TopK, check_prune, prune_from_options

WHICH = ("x", "y")
FORMS = ("analysis", "exact")
CIRCUITS = ("excitatory", "inhibitory", "both")
BLOCK_BYTES = 64 * 2**20
PROGRESS_ENTRIES = 2**28  # show a progress bar from this many entries of G on (a few seconds of work)


@dataclass
class Circuits:
    """A signed neuron graph as two non-negative sparse circuits, ``G = excitatory - inhibitory``.

    Both are ``scipy.sparse.csr_array`` of shape (n_pre, n_post) with ``A[i, j]`` = weight of the edge ``i -> j``.
    ``pre_ids`` and ``post_ids`` give the global neuron id of each row and column (model neurons ``0..n-1``,
    input neuron of token ``t`` is ``n + t``); ``meta`` records how the graph was made.
    """

    excitatory: sparse.csr_array
    inhibitory: sparse.csr_array
    pre_ids: np.ndarray | None = None
    post_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.excitatory = sparse.csr_array(self.excitatory)
        self.inhibitory = sparse.csr_array(self.inhibitory)
        if self.excitatory.shape != self.inhibitory.shape:
            raise ValueError(
                f"Circuits: excitatory has shape {self.excitatory.shape}, inhibitory {self.inhibitory.shape}; "
                "they must be equal"
            )
        for name in ("excitatory", "inhibitory"):
            data = getattr(self, name).data
            if data.size and not (np.isfinite(data).all() and data.min() >= 0):
                raise ValueError(f"Circuits: {name} weights must be finite and >= 0, got min {data.min()!r}")
        for name, size in (("pre_ids", self.shape[0]), ("post_ids", self.shape[1])):
            ids = getattr(self, name)
            ids = np.arange(size) if ids is None else np.asarray(ids, dtype=np.int64)
            if ids.shape != (size,):
                raise ValueError(f"Circuits: {name} has shape {ids.shape}, expected ({size},)")
            setattr(self, name, ids)

    @property
    def shape(self) -> tuple[int, int]:
        return self.excitatory.shape

    @property
    def n_excitatory(self) -> int:
        return int(self.excitatory.count_nonzero())

    @property
    def n_inhibitory(self) -> int:
        return int(self.inhibitory.count_nonzero())

    @property
    def n_edges(self) -> int:
        """Edges of both circuits (an (i, j) pair is in at most one of them)."""
        return self.n_excitatory + self.n_inhibitory

    def signed(self) -> sparse.csr_array:
        """``G^T = excitatory - inhibitory`` as one signed CSR array."""
        return sparse.csr_array(self.excitatory - self.inhibitory)

    def circuit(self, name: str = "excitatory") -> sparse.csr_array:
        """The non-negative weights of one circuit: ``"excitatory"``, ``"inhibitory"`` or ``"both"`` (``|G|``)."""
        if name == "excitatory":
            return self.excitatory
        if name == "inhibitory":
            return self.inhibitory
        if name == "both":
            return sparse.csr_array(self.excitatory + self.inhibitory)
        raise ValueError(f"circuit must be one of {CIRCUITS}, got {name!r}")

    def square(self, name: str = "excitatory") -> tuple[sparse.csr_array, np.ndarray]:
        """One circuit as a square graph on the union of pre- and postsynaptic neurons, and their global ids.

        The analysis form of a head is square already; the exact form gains the presynaptic-only neurons
        (other heads, input neurons) as nodes without in-edges.
        """
        A = self.circuit(name)
        if np.array_equal(self.pre_ids, self.post_ids):
            return A, self.pre_ids
        ids = np.union1d(self.pre_ids, self.post_ids)
        coo = A.tocoo()
        rows = np.searchsorted(ids, self.pre_ids)[coo.row]
        cols = np.searchsorted(ids, self.post_ids)[coo.col]
        return sparse.csr_array((coo.data, (rows, cols)), shape=(ids.size, ids.size)), ids


@dataclass(frozen=True)
class GraphFactors:
    """The two factors of a graph, ``A = pre @ post``: ``pre`` (n_pre, d), ``post`` (d, n_post)."""

    pre: np.ndarray
    post: np.ndarray
    pre_ids: np.ndarray
    post_ids: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pre.shape[0], self.post.shape[1]


def _numpy(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().astype(dtype, copy=False)


def _check_graph_arguments(model, which: str, form: str, head: int | None) -> None:
    if which not in WHICH:
        raise ValueError(f"which must be 'x' (D_x, encoder) or 'y' (D_y, encoder_v), got {which!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    h = model.config.n_head
    if head is not None and (isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < h):
        raise ValueError(f"head must be an integer in [0, {h}) or None for the whole graph, got {head!r}")


def graph_factors(model, which: str = "x", form: str = "analysis", head: int | None = None,
                  dtype=np.float64) -> GraphFactors:
    """The factors ``pre = E^T`` (or ``E_ext^T``) and ``post = D^T`` of a model's graph ``A = G^T`` (module doc)."""
    _check_graph_arguments(model, which, form, head)
    c = model.config
    n, N, d = c.n_neurons, c.N, c.n_embd
    D = model.encoder if which == "x" else model.encoder_v  # h, d, N
    post = _numpy(D, dtype).transpose(1, 0, 2).reshape(d, n)  # D^T, neuron index head-major
    pre = _numpy(model.decoder, dtype)  # E^T, (n, d)
    pre_ids = np.arange(n)
    if form == "exact":
        pre = np.concatenate([pre, _numpy(model.embed.weight, dtype)])  # [E | embed^T]^T
        if c.layer_norm:  # C is LayerNorm's mean subtraction; the Normfree residual stream is not centred
            pre = pre - pre.mean(axis=1, keepdims=True)  # C applied to every column of E_ext
        pre_ids = np.arange(n + c.vocab_size)
    post_ids = np.arange(n)
    if head is not None:
        cols = slice(head * N, (head + 1) * N)
        post, post_ids = post[:, cols], post_ids[cols]
        if form == "analysis":
            pre, pre_ids = pre[cols], pre_ids[cols]
    meta = {"which": which, "form": form, "head": head, "n_neurons": n, "neurons_per_head": N,
            "vocab_size": c.vocab_size, "d": d}
    if c.damping:  # the synapses' decay (docs/model.md 4.7), for the circuit files: tau_h in tokens
        meta["time_constants"] = model.time_constants().tolist()
    return GraphFactors(np.ascontiguousarray(pre), np.ascontiguousarray(post), pre_ids, post_ids, meta)


def dense_neuron_graph(model, which: str = "x", form: str = "analysis", head: int | None = None,
                       dtype=np.float64) -> np.ndarray:
    """The signed graph ``A = G^T`` as a dense array, straight from docs/model.md 4.1 (a reference for small n).

    ``G = D E`` (analysis) or ``G = D C [E | embed^T]`` (exact); ``A[i, j] = G[j, i]``.
    """
    _check_graph_arguments(model, which, form, head)
    c = model.config
    enc = _numpy(model.encoder if which == "x" else model.encoder_v, dtype)  # h, d, N
    D = np.concatenate([enc[k].T for k in range(c.n_head)])  # (n, d): row head*N + k is neuron k of the head
    E = _numpy(model.decoder, dtype).T  # (d, n)
    if form == "exact":
        d = c.n_embd
        C = np.eye(d) - np.ones((d, d)) / d if c.layer_norm else np.eye(d)
        E = C @ np.hstack([E, _numpy(model.embed.weight, dtype).T])
    A = (D @ E).T
    if head is None:
        return A
    cols = slice(head * c.N, (head + 1) * c.N)
    return A[cols, cols] if form == "analysis" else A[:, cols]


class TileEdges(NamedTuple):
    """The edges one tile keeps of each circuit, ``(rows, cols, weights)`` in global indices, and the largest
    ``|G|`` of the tile (what a threshold that keeps nothing is told)."""

    excitatory: tuple[np.ndarray, np.ndarray, np.ndarray]
    inhibitory: tuple[np.ndarray, np.ndarray, np.ndarray]
    largest: float


def _tile_ranges(factors: GraphFactors, axis: int, block_bytes: int | None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each tile: rows ``A[start:stop, :]`` (axis 0) or columns ``A[:, start:stop]`` (axis 1),
    each about ``block_bytes`` (default ``BLOCK_BYTES``, read at each call)."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    n_pre, n_post = factors.shape
    other = n_post if axis == 0 else n_pre
    step = max(1, block_bytes // max(1, other * factors.pre.itemsize))
    total = n_pre if axis == 0 else n_post
    return [(start, min(start + step, total)) for start in range(0, total, step)]


def _tile(factors: GraphFactors, axis: int, start: int, stop: int) -> np.ndarray:
    pre, post = factors.pre, factors.post
    return pre[start:stop] @ post if axis == 0 else pre @ post[:, start:stop]


def _show_progress(factors: GraphFactors, progress: bool | None) -> bool:
    return factors.shape[0] * factors.shape[1] >= PROGRESS_ENTRIES if progress is None else progress


def strongest_of(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, m: int):
    """The ``m`` edges of largest weight; of equal weights the smaller ``(row, col)`` wins, so the choice does not
    depend on the order the edges come in (tiles gathered in any order choose alike)."""
    if weights.size <= m:
        return rows, cols, weights
    keep = np.argpartition(weights, weights.size - m)[weights.size - m:]
    kth = weights[keep].min()  # the m-th largest weight
    if np.count_nonzero(weights == kth) > np.count_nonzero(weights[keep] == kth):  # a tie at the cut
        above = keep[weights[keep] > kth]
        tied = np.flatnonzero(weights == kth)
        tied = tied[np.lexsort((cols[tied], rows[tied]))[:m - above.size]]
        keep = np.concatenate([above, tied])
    return rows[keep], cols[keep], weights[keep]


def tile_edges(factors: GraphFactors, prune: Prune, axis: int, start: int, stop: int,
               floors: tuple[float, float] = (0.0, 0.0)) -> TileEdges:
    """The edges one tile of ``A = pre @ post`` keeps (a task of :func:`product_graph`, a pure function).

    ``TopK`` tiles are columns (each postsynaptic neuron's k strongest inputs), the others rows. A ``Strongest(m)``
    tile keeps its m strongest edges of each circuit, of those at or above that circuit's ``floors`` (the m-th
    weight already gathered from other tiles, 0 at first): no edge below a floor can be among the m strongest.
    """
    block = _tile(factors, axis, start, stop)
    largest = max(float(block.max()), -float(block.min()))
    kept = []
    for values, floor in ((block, floors[0]), (-block, floors[1])):
        if isinstance(prune, TopK):
            k = min(prune.k, values.shape[0])
            idx = np.argpartition(values, values.shape[0] - k, axis=0)[values.shape[0] - k:]  # k, c: the k largest
            top = np.take_along_axis(values, idx, axis=0)
            keep = top > 0
            rows, cols, weights = idx[keep], np.nonzero(keep)[1] + start, top[keep]
        else:
            if isinstance(prune, Threshold):
                admitted = values >= prune.beta
            else:
                admitted = values >= floor if floor > 0 else values > 0
            rows, cols = np.nonzero(admitted)
            weights = values[rows, cols]
            rows = rows + start
            if isinstance(prune, Strongest):
                rows, cols, weights = strongest_of(rows, cols, weights, prune.m)
        kept.append((rows.astype(np.int32), cols.astype(np.int32), weights))
    return TileEdges(kept[0], kept[1], largest)


class _Kept:
    """The edges of one circuit gathered from the tiles, kept by tile index; with ``m`` only the m strongest
    (``strongest_of``), and ``floor``, the m-th weight once m are held, tells the next tiles what cannot enter."""

    def __init__(self, m: int | None = None) -> None:
        self.m, self.floor, self.size = m, 0.0, 0
        self.parts: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []

    def add(self, index: int, edges: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.parts.append((index, edges))
        self.size += edges[2].size
        # the first floor at once (it spares every later tile most of its edges), then every m edges added
        if self.m is not None and (self.size > 2 * self.m or (self.floor == 0 and self.size >= self.m)):
            self.shrink()

    def arrays(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and weights of the parts, concatenated in tile order."""
        parts = [edges for _, edges in sorted(self.parts, key=lambda part: part[0])]
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, dtype)
        rows, cols, weights = (np.concatenate(column) for column in zip(*parts))
        return rows, cols, weights

    def shrink(self) -> None:
        if self.m is None or not self.parts:
            return
        rows, cols, weights = strongest_of(*self.arrays(self.parts[0][1][2].dtype), self.m)
        if weights.size >= self.m:
            self.floor = float(weights.min())
        self.parts, self.size = [(-1, (rows, cols, weights))], weights.size

    def to_csr(self, shape: tuple[int, int], dtype, row_sorted: bool = False) -> sparse.csr_array:
        self.shrink()
        rows, cols, weights = self.arrays(dtype)
        self.parts, self.size = [], 0
        if row_sorted:  # row tiles in order, each in row-major order: build CSR without a sort or a copy
            indptr = np.zeros(shape[0] + 1, dtype=np.int64 if rows.size >= 2**31 else np.int32)
            np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
            return sparse.csr_array((weights, cols, indptr), shape=shape)
        return sparse.csr_array(sparse.coo_array((weights, (rows, cols)), shape=shape))  # sorted: canonical


def product_graph(factors: GraphFactors, prune: Prune = None, progress: bool | None = None,
                  block_bytes: int | None = None, scheduler=None) -> Circuits:
    """Extract ``A = pre @ post`` tile by tile, pruned, as excitatory and inhibitory circuits.

    Each tile is a task (:func:`tile_edges`) run by ``scheduler`` (``bdh_graph.distributed.engine``: None, in this
    process; ``"local:N"``, a scheduler address, or an ``Engine``): the factors go to each worker once, a worker
    holds one tile (about ``block_bytes``, default ``BLOCK_BYTES``, plus its comparison masks) at a time, and only
    the edges kept come back.
    The result is the same wherever the tiles run. If no edge survives the pruning the circuits are empty and a
    warning names the largest ``|G|``.
    """
    check_prune(prune)
    shape, dtype = factors.shape, factors.pre.dtype
    axis = 1 if isinstance(prune, TopK) else 0
    tiles = _tile_ranges(factors, axis, block_bytes)
    m = prune.m if isinstance(prune, Strongest) else None
    exc, inh = _Kept(m), _Kept(m)
    largest = 0.0
    with engine(scheduler) as eng, eng.shared(factors) as (shared,):
        # read one task at a time, so each tile sees the floors of the tiles gathered before it
        tasks = ((shared, prune, axis, start, stop, (exc.floor, inh.floor)) for start, stop in tiles)
        for index, tile in eng.map(tile_edges, tasks, len(tiles), f"G_{factors.meta.get('which', '')} "
                                   f"{shape[0]}x{shape[1]}", "tile", _show_progress(factors, progress),
                                   first_alone=m is not None):  # the first tile gives the first floors
            exc.add(index, tile.excitatory)
            inh.add(index, tile.inhibitory)
            largest = max(largest, tile.largest)
    row_sorted = axis == 0 and m is None
    circuits = Circuits(exc.to_csr(shape, dtype, row_sorted), inh.to_csr(shape, dtype, row_sorted),
                        factors.pre_ids, factors.post_ids, {**factors.meta, "prune": repr(prune)})
    if isinstance(prune, Threshold):
        circuits.meta["largest_abs_weight"] = largest
        if circuits.n_edges == 0:
            warnings.warn(f"no edge has |G| >= beta = {prune.beta:g} (the largest |G| is {largest:.4g}): "
                          "the graph is empty; choose a smaller beta", stacklevel=3)
    return circuits


def neuron_graph(model, which: str = "x", form: str = "analysis", head: int | None = None,
                 prune: Prune = None, dtype=np.float64, progress: bool | None = None, scheduler=None) -> Circuits:
    """The neuron graph ``G_x`` (``which="x"``) or ``G_y`` of a model, pruned, as two circuits (module doc).

    >>> torch.manual_seed(0)                                                   # doctest: +SKIP
    >>> model = BDH(BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4))
    >>> g = neuron_graph(model, head=1, prune=Threshold(0.01))
    >>> g.shape, g.excitatory[3, 5]   # weight of the edge 3 -> 5 of head 1 (neurons 35 -> 37)
    """
    return product_graph(graph_factors(model, which, form, head, dtype), prune, progress, scheduler=scheduler)


class Extraction(NamedTuple):
    """A pruned neuron graph with its factors and the rule that pruned it (what :func:`extract` returns)."""

    factors: GraphFactors
    prune: Prune
    circuits: Circuits


def extract(model, which: str = "x", form: str = "analysis", head: int | None = None, beta: float | None = None,
            top_k: int | None = None, edges: int | None = None, circuit: str = "both",
            progress: bool | None = None, scheduler=None) -> Extraction:
    """A model's neuron graph pruned by at most one option, at the paper's edge density by default.

    ``beta``, ``top_k``, ``edges`` as in :func:`prune_from_options` with ``n_post`` the graph's postsynaptic
    neurons: without any, each circuit keeps its ``paper_edge_count(n_post)`` strongest edges. A graph whose
    ``circuit`` ("excitatory", "inhibitory" or "both") is left without an edge is refused with the largest |G|.
    ``scheduler``: where the tiles run (:func:`product_graph`).

    >>> g = extract(model, head=0).circuits   # doctest: +SKIP
    >>> g.n_excitatory == paper_edge_count(model.config.N)
    True
    """
    if circuit not in CIRCUITS:
        raise ValueError(f"circuit must be one of {CIRCUITS}, got {circuit!r}")
    factors = graph_factors(model, which, form, head)
    prune = prune_from_options(beta, top_k, edges, n_post=factors.shape[1])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no edge has")  # refused below, naming the circuit
        circuits = product_graph(factors, prune, progress, scheduler=scheduler)
    if circuits.circuit(circuit).nnz == 0:
        largest = circuits.meta.get("largest_abs_weight")  # known when thresholding, the one rule that can empty G
        facts = f" (the largest |G| is {largest:.4g}); choose a smaller beta" if largest is not None else ""
        raise ValueError(f"no {circuit} edge of G_{which} is left by {prune!r}{facts}")
    return Extraction(factors, prune, circuits)


def _tile_range(factors: GraphFactors, start: int, stop: int) -> tuple[float, float]:
    """The smallest and largest entry of the rows ``start:stop`` of ``G`` (a task of :func:`entry_histogram`)."""
    block = _tile(factors, 0, start, stop)
    return float(block.min()), float(block.max())


def _tile_histogram(factors: GraphFactors, start: int, stop: int, bins: np.ndarray) -> np.ndarray:
    """Counts of the entries of the rows ``start:stop`` of ``G`` in ``bins`` (a task of :func:`entry_histogram`)."""
    return np.histogram(_tile(factors, 0, start, stop), bins=bins)[0]


def entry_histogram(factors: GraphFactors, bins: int | np.ndarray = 200, block_bytes: int | None = None,
                    progress: bool | None = None, scheduler=None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram ``(counts, edges)`` of all entries of ``G``, counted tile by tile (never held whole), the tiles
    run by ``scheduler`` (:func:`product_graph`).

    With ``bins`` an integer the range is [min G, max G], found in a first pass.
    """
    tiles = _tile_ranges(factors, 0, block_bytes)
    show = _show_progress(factors, progress)
    with engine(scheduler) as eng, eng.shared(factors) as (shared,):
        if np.isscalar(bins):
            lo, hi = np.inf, -np.inf
            for _, (low, high) in eng.map(_tile_range, ((shared, *tile) for tile in tiles), len(tiles),
                                          "range of G", "tile", show):
                lo, hi = min(lo, low), max(hi, high)
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
        bins = np.asarray(bins)
        counts = np.zeros(len(bins) - 1, dtype=np.int64)
        for _, tile_counts in eng.map(_tile_histogram, ((shared, *tile, bins) for tile in tiles), len(tiles),
                                      "histogram of G", "tile", show):
            counts += tile_counts
    return counts, bins
