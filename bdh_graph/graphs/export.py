"""Neuron graphs to and from files: GraphML and GEXF (Gephi), CSV edge list, ``.npz``, and networkx ``DiGraph``.

Nodes are global neuron ids (model neurons ``0..n-1``, the input neuron of token ``t`` is ``n + t``); an edge
``i -> j`` carries its signed weight (``weight``, inhibitory edges negative) and its ``circuit``. Node attributes
``pre_index`` / ``post_index`` (-1 where absent) keep the row and column of each neuron, so a graph read back has
its original shape; ``.npz`` and GraphML also keep how the graph was made (``Circuits.meta``), GEXF does not.
The CSV edge list (``pre,post,weight,circuit``) cannot hold neurons without edges, so reading one recovers only
the neurons it names.

**The .npz layout**: an export named ``X.npz`` is two files, one per circuit, ``X.excitatory.npz`` and
``X.inhibitory.npz`` (see :func:`circuit_paths`). Each is exactly what ``scipy.sparse.save_npz`` writes for the
circuit's non-negative ``csr_array`` ``A`` (``A[i, j]`` = weight of the edge ``i -> j``), so
``scipy.sparse.load_npz("X.excitatory.npz")`` reads it; beside it lie ``pre_ids`` and ``post_ids`` (the global
neuron id of each row and column) and the ``bdh_graph`` header of ``bdh_graph.files`` (format
``circuit``, version 1, meta ``{"circuit": name, "graph": Circuits.meta}``), which scipy ignores and
:func:`read_graph` checks, so that a file of another kind or version is refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree.ElementTree import ParseError

import networkx as nx
import numpy as np
from scipy import sparse

from ..errors import FileFormatError
from ..files import atomic_path, read_tagged, write_tagged
from .neuron_graphs import Circuits

FORMATS = (".graphml", ".gexf", ".csv", ".npz")
CIRCUIT_FORMAT, CIRCUIT_VERSION = "circuit", 1
CIRCUIT_NAMES = ("excitatory", "inhibitory")
CSV_HEADER = "pre,post,weight,circuit"


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"graph file '{path}': unknown format '{suffix}', expected one of {', '.join(FORMATS)}")
    return suffix


def _signed_edges(circuits: Circuits, circuit: str):
    """(pre id, post id, signed weight, circuit name) of every edge of ``circuit`` ("both": both circuits)."""
    names = ("excitatory", "inhibitory") if circuit == "both" else (circuit,)
    for name in names:
        coo = circuits.circuit(name).tocoo()
        sign = 1.0 if name == "excitatory" else -1.0
        yield circuits.pre_ids[coo.row], circuits.post_ids[coo.col], sign * coo.data, name


def to_networkx(circuits: Circuits, circuit: str = "both") -> nx.DiGraph:
    """A ``DiGraph`` on global neuron ids with signed ``weight`` and ``circuit`` on each edge (module doc)."""
    G = nx.DiGraph(meta=json.dumps(circuits.meta, default=str))
    n = circuits.meta.get("n_neurons")
    N = circuits.meta.get("neurons_per_head")
    pre = dict(zip(circuits.pre_ids.tolist(), range(circuits.shape[0])))
    post = dict(zip(circuits.post_ids.tolist(), range(circuits.shape[1])))
    for node in sorted(pre.keys() | post.keys()):
        attrs = {"pre_index": pre.get(node, -1), "post_index": post.get(node, -1)}
        if n is not None:
            attrs["kind"] = "neuron" if node < n else "input"
            if node < n and N:
                attrs["head"] = node // N
            if node >= n:
                attrs["token"] = node - n
        G.add_node(node, **attrs)
    for src, dst, weight, name in _signed_edges(circuits, circuit):
        G.add_edges_from((int(i), int(j), {"weight": float(w), "circuit": name}) for i, j, w in zip(src, dst, weight))
    return G


def _circuits(pre: np.ndarray, post: np.ndarray, weight: np.ndarray, pre_ids: np.ndarray, post_ids: np.ndarray,
              meta: dict) -> Circuits:
    rows, cols = np.searchsorted(pre_ids, pre), np.searchsorted(post_ids, post)
    shape = (pre_ids.size, post_ids.size)
    exc, inh = weight > 0, weight < 0
    return Circuits(sparse.csr_array((weight[exc], (rows[exc], cols[exc])), shape=shape),
                    sparse.csr_array((-weight[inh], (rows[inh], cols[inh])), shape=shape), pre_ids, post_ids, meta)


def from_networkx(G: nx.DiGraph) -> Circuits:
    """Circuits from a directed graph with integer nodes and a numeric ``weight`` per edge (1 if missing).

    With ``pre_index``/``post_index`` node attributes (as ``to_networkx`` writes) the rows and columns are
    restored; otherwise every node is both pre- and postsynaptic, in increasing order.
    """
    nodes = np.array(sorted(G.nodes), dtype=np.int64)
    index = {role: {v: int(d[role]) for v, d in G.nodes(data=True) if int(d.get(role, -1)) >= 0}
             for role in ("pre_index", "post_index")}
    if all(len(index[r]) for r in index):
        pre_ids = np.array(sorted(index["pre_index"], key=index["pre_index"].get), dtype=np.int64)
        post_ids = np.array(sorted(index["post_index"], key=index["post_index"].get), dtype=np.int64)
    else:
        pre_ids = post_ids = nodes
    if not (np.all(np.diff(pre_ids) > 0) and np.all(np.diff(post_ids) > 0)):
        raise ValueError("graph: pre_index and post_index must list neurons in increasing id order")
    edges = list(G.edges(data="weight", default=1.0))
    src = np.array([e[0] for e in edges], dtype=np.int64)
    dst = np.array([e[1] for e in edges], dtype=np.int64)
    weight = np.array([e[2] for e in edges], dtype=np.float64)
    meta = json.loads(G.graph["meta"]) if "meta" in G.graph else {}
    return _circuits(src, dst, weight, pre_ids, post_ids, meta)


def circuit_paths(path) -> dict[str, Path]:
    """The two files of the ``.npz`` export named ``path`` (module doc), by circuit.

    >>> circuit_paths("g.npz")["inhibitory"], circuit_paths("g.excitatory.npz")["inhibitory"]
    (PosixPath('g.inhibitory.npz'), PosixPath('g.inhibitory.npz'))
    """
    path = Path(path)
    base, _, last = path.stem.rpartition(".")
    stem = base if base and last in CIRCUIT_NAMES else path.stem  # either file's own name gives the same pair
    return {name: path.with_name(f"{stem}.{name}.npz") for name in CIRCUIT_NAMES}


def _write_npz(circuits: Circuits, path: Path, circuit: str) -> list[Path]:
    meta = json.loads(json.dumps(circuits.meta, default=str))
    written = []
    for name, file in circuit_paths(path).items():
        # A circuit not asked for is written empty rather than left out, so a pair never mixes two exports.
        A = circuits.circuit(name) if circuit in (name, "both") else sparse.csr_array(circuits.shape)
        arrays = {"format": np.array(b"csr"), "shape": np.array(A.shape), "data": A.data, "indices": A.indices,
                  "indptr": A.indptr, "_is_array": np.array(True),  # the entries of scipy.sparse.save_npz
                  "pre_ids": circuits.pre_ids, "post_ids": circuits.post_ids}
        written.append(write_tagged(file, CIRCUIT_FORMAT, CIRCUIT_VERSION, arrays, {"circuit": name, "graph": meta},
                                    compress=True))
    return written


def write_graph(circuits: Circuits, path, circuit: str = "both") -> list[Path]:
    """Write ``circuits`` (or only its ``circuit``) to ``path`` and return the files written.

    The format follows the suffix: .graphml, .gexf, .csv (one file), or .npz (one file per circuit; module doc).
    """
    path = Path(path)
    fmt = _format(path)
    if circuit not in ("both", *CIRCUIT_NAMES):
        raise ValueError(f"circuit must be 'excitatory', 'inhibitory' or 'both', got {circuit!r}")
    if fmt == ".npz":
        return _write_npz(circuits, path, circuit)
    with atomic_path(path) as tmp:
        if fmt == ".csv":
            with open(tmp, "w") as f:
                f.write(CSV_HEADER + "\n")
                for src, dst, weight, name in _signed_edges(circuits, circuit):
                    rows = zip(src.tolist(), dst.tolist(), weight.tolist())
                    f.writelines(f"{i},{j},{w!r},{name}\n" for i, j, w in rows)
        elif fmt == ".graphml":
            nx.write_graphml(to_networkx(circuits, circuit), tmp)
        else:
            nx.write_gexf(to_networkx(circuits, circuit), tmp)
    return [path]


def _read_npz(path: Path) -> Circuits:
    """The circuits of the export ``path`` names (either file of the pair, or ``X.npz`` for both), or of one
    circuit file under a name of its own; a circuit without a file is empty."""
    pair = circuit_paths(path)
    files = [file for file in pair.values() if file.is_file()]
    if not files:
        if not path.exists():
            raise FileNotFoundError(f"graph file '{path}' does not exist (an .npz export is the pair "
                                    f"'{pair['excitatory'].name}', '{pair['inhibitory'].name}')")
        files = [path]
    parts, first = {}, None
    for file in files:
        f = read_tagged(file, CIRCUIT_FORMAT, CIRCUIT_VERSION, "bdh_graph circuit file")
        name = f.meta.get("circuit")
        if name not in CIRCUIT_NAMES or (file in pair.values() and file != pair[name]):
            raise FileFormatError(f"'{file}' holds the {name!r} circuit, which its name does not say")
        try:
            shape = tuple(int(s) for s in f.arrays["shape"])
            A = sparse.csr_array((f.arrays["data"], f.arrays["indices"], f.arrays["indptr"]), shape=shape)
            ids = (f.arrays["pre_ids"], f.arrays["post_ids"])
        except (KeyError, ValueError, TypeError) as err:
            raise FileFormatError(f"'{file}' is a malformed circuit file: {err}") from err
        if first is None:
            first = (file, shape, ids, f.meta.get("graph", {}))
        elif (shape, f.meta.get("graph", {})) != (first[1], first[3]) or not all(map(np.array_equal, ids, first[2])):
            raise FileFormatError(f"'{file}' and '{first[0]}' are not from one export (their shapes, neuron ids or "
                                  "graph metadata differ)")
        parts[name] = A
    _, shape, (pre_ids, post_ids), meta = first
    empty = sparse.csr_array(shape)
    return Circuits(parts.get("excitatory", empty), parts.get("inhibitory", empty), pre_ids, post_ids, meta)


def _read_csv(path: Path) -> Circuits:
    with open(path) as f:
        header = f.readline().strip()
        if header != CSV_HEADER:
            raise ValueError(f"first line is {header[:60]!r}, expected {CSV_HEADER!r}")
        table = np.loadtxt(f, delimiter=",", usecols=(0, 1, 2), ndmin=2, dtype=np.float64)
    pre, post, weight = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2]
    return _circuits(pre, post, weight, np.unique(pre), np.unique(post), {})


def read_graph(path) -> Circuits:
    """Read a graph written by ``write_graph`` (or any directed GraphML/GEXF with integer node ids).

    An ``.npz`` export is read from its pair of circuit files (module doc); a file of another kind or version
    is refused with a :class:`~bdh_graph.errors.FileFormatError` naming it.
    """
    path = Path(path)
    fmt = _format(path)
    if fmt == ".npz":
        return _read_npz(path)
    if not path.is_file():
        raise FileNotFoundError(f"graph file '{path}' does not exist")
    try:
        if fmt == ".csv":
            return _read_csv(path)
        G = nx.read_graphml(path, node_type=int) if fmt == ".graphml" else nx.read_gexf(path, node_type=int)
        return from_networkx(G)
    except (ValueError, KeyError, TypeError, OSError, ParseError, nx.NetworkXError) as err:
        raise FileFormatError(f"graph file '{path}' is not a readable {fmt[1:]} graph: {err}") from err
