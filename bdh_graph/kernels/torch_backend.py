"""The ``torch`` backend: the network's arrays as torch tensors on the CPU or a CUDA GPU.

Every kernel of ``reference.py`` is a few vectorised torch calls over the active neurons: the edges of the
active rows of a CSR graph are gathered at once (:func:`edges_of`, ``repeat_interleave`` + ``index_select``),
messages are summed onto their targets with ``index_add_``, a graph whose every row takes part is multiplied
as a ``torch.sparse_csr_tensor``, and Hebbian writes add an outer product (or the matrix product of K steps) into
the synapse matrix with ``index_add_``. A step has no per-neuron Python loop, so the same code runs on a GPU, and
the kernels of a layer's rounds take every head at once (outputs with one row per head: messages go to the row of
their head in the flattened tensor), but for the gate's ``pull``, which runs head by head so that a head whose
rows fill their range takes one sparse product.

Conventions beyond ``reference.py``: neuron ids (``idx``) are int64 tensors, sorted and without repeats, as
:meth:`TorchBackend.active` returns them, so ``len(idx) == rows`` means every row; graphs keep int64 column
indices (torch indexes with int64). Event counts are Python ints, which costs one device sync per kernel.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .backend import Backend, row_blocks

DEVICE_TYPES = ("cpu", "cuda")
# pull multiplies the whole row range of its rows when they are at least 1/RANGE_FILL of it, else gathers edges
RANGE_FILL = 4


def check_device(device) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``) as a ``torch.device`` this machine
    can run, else a ``ValueError`` that says what to install."""
    expected = f"device must be one of {DEVICE_TYPES} (optionally 'cuda:<index>'), got {device!r}"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(expected) from err
    if parsed.type not in DEVICE_TYPES:
        raise ValueError(expected)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(parsed)!r} is not available: torch.cuda.is_available() is False; "
                             "install a CUDA build of torch (see README)")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {str(parsed)!r} is not available: this machine has {count} CUDA device(s), "
                             f"cuda:0 .. cuda:{count - 1}")
    return parsed


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a numpy or torch ``dtype``."""
    return dtype if isinstance(dtype, torch.dtype) else torch.from_numpy(np.empty(0, np.dtype(dtype))).dtype


def edges_of(indptr: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the edges of rows ``idx`` of a CSR graph, row after row, and for each edge the index ``q``
    of its row in ``idx``."""
    starts = indptr.index_select(0, idx)
    counts = indptr.index_select(0, idx + 1) - starts
    total = int(counts.sum())  # the one host sync: the size of the outputs
    owner = torch.repeat_interleave(torch.arange(len(idx), device=idx.device), counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts  # where each row's edges begin in the output
    positions = torch.arange(total, device=idx.device) + (starts - first).index_select(0, owner)
    return positions, owner


def csr_mv(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``A @ vec`` for the CSR matrix ``A = (crow, cols, values)`` of ``len(crow) - 1`` rows."""
    with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        A = torch.sparse_csr_tensor(crow, cols, values, (len(crow) - 1, len(vec)), check_invariants=False)
    return torch.mv(A, vec)


def flat_block_index(idx: torch.Tensor, owner: torch.Tensor, rows_per: int, n_cols: int,
                     cols: torch.Tensor) -> torch.Tensor:
    """Index into a flattened (blocks, n_cols) tensor of the column ``cols`` of each edge in the block of its row
    (``idx[owner]``)."""
    return torch.div(idx.index_select(0, owner), rows_per, rounding_mode="floor") * n_cols + cols


def rows(M: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``idx`` of ``M``; ``M`` itself when ``idx`` holds every row (sorted ids without repeats)."""
    return M if len(idx) == M.shape[0] else M.index_select(0, idx)


def add_block(M: torch.Tensor, row_idx: torch.Tensor, col_idx: torch.Tensor, update: torch.Tensor) -> None:
    """``M[row_idx x col_idx] += update`` (rows, cols) for the contiguous ``M``."""
    if len(col_idx) == M.shape[1]:  # every column: add whole rows
        M.index_add_(0, row_idx, update)
    else:  # entries by their flat index
        M.view(-1).index_add_(0, (row_idx.unsqueeze(1) * M.shape[1] + col_idx).view(-1), update.reshape(-1))


class TorchBackend(Backend):
    """Torch tensors on ``device`` (``"cpu"`` or ``"cuda[:i]"``); CPU threads: ``torch.set_num_threads``."""

    name = "torch"

    def __init__(self, device="cpu"):
        self.device = check_device(device)

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r})"

    # -- arrays ----------------------------------------------------------------------------------------------
    def asarray(self, a, dtype) -> torch.Tensor:
        if not isinstance(a, torch.Tensor):
            a = torch.from_numpy(np.ascontiguousarray(a))
        return a.detach().to(self.device, torch_dtype(dtype), copy=True).contiguous()

    def index_array(self, a) -> torch.Tensor:
        return self.asarray(a, torch.int64)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    def zeros(self, shape, dtype) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch_dtype(dtype), device=self.device)

    def column_dtype(self, n_cols: int):
        return torch.int64  # torch indexes with int64

    def active(self, v) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.nonzero(v).view(-1)
        return idx, v.index_select(0, idx)

    def relu(self, v) -> torch.Tensor:
        return torch.relu(v)

    def rope(self, v, cos, sin) -> torch.Tensor:
        pairs = v.unflatten(-1, (-1, 2))
        return v * cos + torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2) * sin

    def gain(self, u, eps: float) -> torch.Tensor:
        return torch.sqrt(torch.var(u, dim=-1, correction=0) + eps)

    def all_finite(self, v) -> bool:
        return bool(torch.isfinite(v).all())

    # -- message-passing kernels -----------------------------------------------------------------------------
    def push(self, indptr, indices, data, idx, val, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, out, "push: out")
        positions, owner = edges_of(indptr, idx)
        cols = indices.index_select(0, positions)
        if blocks > 1:
            cols = flat_block_index(idx, owner, rows_per, out.shape[-1], cols)
        out.view(-1).index_add_(0, cols, data.index_select(0, positions) * val.index_select(0, owner))
        return len(positions)

    def pull(self, indptr, indices, data, idx, signal, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, signal, "pull: signal")
        if blocks == 1:
            return self._pull_rows(indptr, indices, data, idx, signal.reshape(-1), out)
        # head by head (the rows of a head are one run of the sorted ids), so that each may take the sparse product
        bounds = torch.searchsorted(idx, torch.arange(blocks + 1, device=idx.device) * rows_per).tolist()
        return sum(self._pull_rows(indptr, indices, data, idx[lo:hi], signal[b], out[lo:hi])
                   for b, (lo, hi) in enumerate(zip(bounds, bounds[1:])))

    def _pull_rows(self, indptr, indices, data, idx, signal, out) -> int:
        if len(idx) == 0:
            return 0
        lo, hi = idx[[0, -1]].tolist()
        if RANGE_FILL * len(idx) < hi + 1 - lo:  # a few rows far apart: gather their edges
            positions, owner = edges_of(indptr, idx)
            source = signal.index_select(0, indices.index_select(0, positions))
            out.zero_().index_add_(0, owner, data.index_select(0, positions) * source)
            return int(torch.count_nonzero(source))
        # the rows fill their range [lo, hi]: multiply all of it as one sparse CSR matrix and keep rows idx
        start, end = indptr[[lo, hi + 1]].tolist()
        crow, cols, rows_idx = indptr[lo:hi + 2] - start, indices[start:end], idx - lo
        out.copy_(csr_mv(crow, cols, data[start:end], signal).index_select(0, rows_idx))
        fired = csr_mv(crow, cols, torch.ones_like(data[start:end]), (signal != 0).to(data.dtype))  # per row
        return int(fired.index_select(0, rows_idx).long().sum())

    def rows_combine(self, M, idx, val, out) -> int:
        out.add_(val @ rows(M, idx))
        return int(torch.count_nonzero(val)) * M.shape[1]

    def rows_dot(self, M, idx, vec, out) -> int:
        blocks, rows_per = row_blocks(M.shape[0], vec, "rows_dot: vec")
        if blocks == 1:
            out.copy_(rows(M, idx) @ vec.reshape(-1))
        else:  # every head at once: each row meets its head's vector
            out.copy_((rows(M, idx) * vec.index_select(0, torch.div(idx, rows_per, rounding_mode="floor"))).sum(1))
        return len(idx) * M.shape[1]

    def outer_add(self, M, row_idx, row_val, col_idx, col_val) -> int:
        add_block(M, row_idx, col_idx, torch.outer(row_val, col_val))
        return len(row_idx) * len(col_idx)

    def product_add(self, M, row_idx, R, col_idx, C) -> int:
        add_block(M, row_idx, col_idx, R.T @ C)
        return int(((R != 0).sum(1) * (C != 0).sum(1)).sum())

    def graph_outer_add(self, indptr, indices, data, idx, val, col) -> int:
        positions, owner = edges_of(indptr, idx)
        post = col.index_select(0, indices.index_select(0, positions))
        data.index_add_(0, positions, val.index_select(0, owner) * post)
        return int(torch.count_nonzero(post))

    def graph_product_add(self, indptr, indices, data, idx, R, C) -> int:
        positions, owner = edges_of(indptr, idx)
        post = R.index_select(1, owner)  # K, synapses
        pre = C.index_select(1, indices.index_select(0, positions))
        data.index_add_(0, positions, (post * pre).sum(0))
        return int(((post != 0) & (pre != 0)).sum())

    def graph_read_write(self, indptr, indices, data, idx, val, pre, out) -> int:
        blocks, rows_per = row_blocks(len(indptr) - 1, out, "graph_read_write: out")
        positions, owner = edges_of(indptr, idx)
        cols = indices.index_select(0, positions)
        weights = val.index_select(0, owner)
        targets = flat_block_index(idx, owner, rows_per, out.shape[-1], cols) if blocks > 1 else cols
        out.view(-1).index_add_(0, targets, data.index_select(0, positions) * weights)  # the read, before the write
        post = pre.index_select(0, cols)
        data.index_add_(0, positions, weights * post)
        return len(positions) + int(torch.count_nonzero(post))

    def rows_read_write(self, M, idx, val, pre_idx, pre_val, out) -> int:
        blocks, rows_per = row_blocks(M.shape[0], out, "rows_read_write: out")
        read = M.index_select(0, idx) * val.unsqueeze(1)  # a copy: the read, before the write
        out.view(blocks, -1).index_add_(0, torch.div(idx, rows_per, rounding_mode="floor"), read)
        add_block(M, idx, pre_idx, torch.outer(val, pre_val))
        return len(idx) * (M.shape[1] + len(pre_idx))
