"""SONATA circuits and spike files: BDH's neuron graphs for NEST (``nest.SonataNetwork``), BMTK and libsonata.

SONATA (Dai et al. 2020, PLoS Comput Biol 16(2): e1007696) stores a network as node and edge populations in
HDF5, type tables as space-separated CSV, and JSON configs. :func:`write_circuit` (a neuron graph, pruned as
``graphs.extract`` prunes it) and :func:`write_hub_circuit` (the hub wiring: the graph's two factors) write::

    DIR/circuit_config.json                    node and edge files, their type tables, the components folders
    DIR/simulation_config.json                 a NEST run: target_simulator NEST, dt, tstop, the input drive
    DIR/bdh_graph.json                         how the graph was made (Circuits.meta), the clock and the
                                               synaptic time constants
    DIR/network/<population>_nodes.h5          one file and one type table per node population
    DIR/network/<population>_node_types.csv
    DIR/network/edges.h5, edge_types.csv       every edge population, one type table
    DIR/components/point_neuron_models/bdh_stand_in.json   the stand-in neuron's NEST parameters
    DIR/inputs/input_spikes.h5                 (with input neurons) the byte drive of a text

**Node populations.** ``neurons``: the graph's model neurons; node id = position in the sorted list of the
model neurons the graph has, so the index within the head for one head's analysis-form block and the global
index (``head * N + k``) when the graph spans heads (the whole graph, and the exact form, whose presynaptic side
is every model neuron); attributes ``neuron_id`` (global), ``head``, ``index_in_head``. ``inputs`` (exact form
only): the V input neurons, node id = byte, attributes ``byte`` and ``label`` (the byte as a quoted bytes
literal, ``'e'``, as in synapse addresses). ``hubs`` (hub wiring only): the d hubs, node id = hub index.

**Edge populations** ``<source>_to_<target>_<circuit>``, circuit ``excitatory`` (edge type 100) or
``inhibitory`` (type 101), so each circuit is its own population and type. The source node is presynaptic:
the edge ``i -> j`` of ``A[i, j]``. ``syn_weight`` is the signed weight of G (inhibitory edges negative, as a
current-based simulator expects; ``|syn_weight|`` is the circuit's weight). Each population has the SONATA
``source_to_target`` and ``target_to_source`` indices. The neuron wiring has ``neurons_to_neurons_*`` and
``inputs_to_neurons_*``; the hub wiring has ``neurons_to_hubs_*``, ``inputs_to_hubs_*`` (the rows of
``pre``: E, or E_ext) and ``hubs_to_neurons_*`` (``post``: D), unpruned, so that ``A = pre @ post``.

**NEST has no BDH neuron.** A BDH neuron is a rectified-linear rate unit that the network updates once per
token; NEST simulates spiking point neurons in continuous time. The circuit therefore names a documented
stand-in, ``iaf_psc_delta`` (leaky integrate-and-fire with delta synapses: a spike along an edge moves the
membrane by ``syn_weight`` mV, so inhibitory edges pull it down), with ``static_synapse`` edges with a delay of
one ``dt``. The stand-in keeps the graph (who excites and inhibits whom, and how strongly); it does not compute
what BDH computes (no synapse state sigma, no gating of y by x, no layers). Change the JSON file to use other
parameters; ``model_template`` in the node type tables names the model.

Its parameters (:func:`stand_in_parameters`) are scaled to the circuit's own weights, since G's weights are
fractions of a millivolt (the bundled model's strongest edge is 0.33) and a fixed threshold would leave the
circuit silent: ``E_L = V_reset = V_m = 0``; ``V_th`` the median weight of the excitatory edges from the input
neurons (without inputs, of all excitatory edges), so that a byte fires the stronger half of the neurons it
excites directly, and a neuron reached only through typical neuron-to-neuron edges (about a quarter of that
weight in the bundled model) fires when several of its inputs coincide; ``tau_m`` one token, so the membrane
forgets within about a token as BDH's x forgets its input; ``t_ref`` ``T_REF_MS`` (2 ms), a cortical neuron's
refractory time, which bounds a neuron at 500 Hz where the delta synapses' 0.1 ms loops would otherwise let it
fire at every step. With edges of one weight scale the threshold is a weight scale: dividing every
``syn_weight`` by ``V_th`` with ``V_th = 1`` is the same network.

**Synaptic time constants** (``bdh_graph.json``, ``synapse_time_constants``): a damped model's Hebbian synapses of
head h decay by ``gamma_h`` per token (docs/model.md 4.7); each head's time constant ``tau_h = -1 / ln gamma_h`` is
recorded in tokens and in ms on the clock (``tau_h * token_ms``); ``null`` without damping (they never decay). The
stand-in's static synapses do not model the synapse state at all.

**The input drive** (``inputs/input_spikes.h5``, exact form): on the clock of :mod:`.clock`, the input neuron
of each token's byte fires once, one ``dt`` (0.1 ms) after the token's onset (NEST takes no spike at 0 ms);
``simulation_config.json`` runs for the text's duration. The config follows the dialect of NEST and BMTK
(``input_file``), not the BBP extension that libsonata's ``SimulationConfig`` reads.

**Streamed**: edges are written from the circuits' CSR arrays a block of rows at a time; nothing dense n x n
is made, and beyond the circuits themselves only one block of edges and the target-to-source index (one
integer pair per run of edges) are held.

**Spike files** (:func:`write_spikes`): ``/spikes/<population>/timestamps`` (ms, attribute ``units``) and
``node_ids``, sorted by time (attribute ``sorting = "by_time"``), as BMTK writes them and libsonata's
``SpikeReader`` reads them. :func:`monitor_spikes` names a spiking run's populations ``<x|y>_layer<l>`` (node
id = global neuron id, the ``neurons`` node id of a whole-graph circuit) and :func:`input_drive` gives the
``inputs`` population.

Needs the ``interop`` extra (h5py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from ..files import atomic_folder, atomic_path
from ..graphs.neuron_graphs import Circuits, GraphFactors
from ..network.address import byte_name
from . import require
from .clock import Clock

SONATA_VERSION = [0, 1]
MAGIC = 0x0A7A  # the SONATA HDF5 files' "magic" root attribute
STAND_IN_MODEL = "iaf_psc_delta"
STAND_IN_FILE = "bdh_stand_in.json"
SYNAPSE_MODEL = "static_synapse"
DT_MS = 0.1  # NEST's resolution in the simulation config
T_REF_MS = 2.0  # the stand-in neuron's refractory time (module doc)
EDGE_TYPES = {"excitatory": 100, "inhibitory": 101}
NODE_TYPES = {"neurons": 100, "inputs": 200, "hubs": 300}
CHUNK_EDGES = 2**20  # edges written per block
PROGRESS_EDGES = 2**23  # show a progress bar from this many edges on
INPUT_FILE = "inputs/input_spikes.h5"
SORTING = {"none": 0, "by_id": 1, "by_time": 2}  # a spike file's "sorting" attribute, an HDF5 enum


def _h5py():
    return require("h5py", purpose="a SONATA file")


# -- what a circuit is made of ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Parts:
    """What a circuit is made of: its node and edge populations, and how its graph was made (``meta``)."""

    nodes: list[_Nodes]
    edges: list[_Edges]
    meta: dict

    @property
    def has_inputs(self) -> bool:
        return any(p.name == "inputs" for p in self.nodes)


@dataclass
class _Nodes:
    """A node population: its name, SONATA model type, and per-node attributes (arrays of one length)."""

    name: str
    model_type: str  # "point_neuron" or "virtual"
    attributes: dict[str, np.ndarray]

    @property
    def size(self) -> int:
        return len(next(iter(self.attributes.values())))


@dataclass(frozen=True)
class _End:
    """One end of an edge population: the node population, the node id (within it) of each row or column of the
    weights, and the population's size."""

    population: str
    ids: np.ndarray
    size: int


@dataclass
class _Edges:
    """An edge population: the non-negative CSR weights of one circuit, rows = ``source`` nodes, columns =
    ``target`` nodes."""

    source: _End
    target: _End
    circuit: str  # "excitatory" or "inhibitory"
    weights: sparse.csr_array

    @property
    def name(self) -> str:
        return f"{self.source.population}_to_{self.target.population}_{self.circuit}"

    @property
    def sign(self) -> float:
        return 1.0 if self.circuit == "excitatory" else -1.0


def _neuron_nodes(model_ids: np.ndarray, N: int | None) -> _Nodes:
    ids = model_ids.astype(np.int64)
    heads = ids // N if N else np.zeros_like(ids)
    return _Nodes("neurons", "point_neuron", {"neuron_id": ids, "head": heads,
                                              "index_in_head": ids - heads * N if N else ids})


def _input_nodes(vocab_size: int) -> _Nodes:
    byte = np.arange(vocab_size, dtype=np.int64)
    return _Nodes("inputs", "virtual", {"byte": byte, "label": np.array([byte_name(b) for b in byte], dtype=object)})


def _split_rows(ids: np.ndarray, n: int) -> tuple[slice, slice]:
    """Rows of model neurons (ids < n) and of input neurons (ids >= n); ``ids`` is sorted."""
    m = int(np.searchsorted(ids, n))
    return slice(0, m), slice(m, ids.size)


def _row_block(A: sparse.csr_array, rows: slice) -> sparse.csr_array:
    """Rows ``rows`` of ``A`` sharing its arrays (no copy of the edges)."""
    lo, hi = A.indptr[rows.start], A.indptr[rows.stop]
    indptr = A.indptr[rows.start:rows.stop + 1] - lo
    return sparse.csr_array((A.data[lo:hi], A.indices[lo:hi], indptr), shape=(rows.stop - rows.start, A.shape[1]),
                            copy=False)


def circuit_parts(circuits: Circuits) -> _Parts:
    """The node and edge populations of a neuron graph (module doc)."""
    meta = circuits.meta
    n, N = meta.get("n_neurons"), meta.get("neurons_per_head")
    if n is None:
        raise ValueError("circuits: meta lacks 'n_neurons' (how many model neurons the graph's ids count); write "
                         "graphs made by bdh_graph.graphs.extract or neuron_graph")
    pre_ids, post_ids = circuits.pre_ids, circuits.post_ids
    if post_ids.size and post_ids.max() >= n:
        raise ValueError(f"circuits: postsynaptic ids must be model neurons (< n = {n}), got {post_ids.max()}")
    model_ids = np.union1d(pre_ids[pre_ids < n], post_ids)
    nodes = [_neuron_nodes(model_ids, N)]
    model_rows, input_rows = _split_rows(pre_ids, n)
    target = _End("neurons", np.searchsorted(model_ids, post_ids), model_ids.size)
    sources = [(model_rows, _End("neurons", np.searchsorted(model_ids, pre_ids[model_rows]), model_ids.size))]
    if input_rows.stop > input_rows.start:
        V = int(meta.get("vocab_size", pre_ids.max() - n + 1))
        nodes.append(_input_nodes(V))
        sources.append((input_rows, _End("inputs", pre_ids[input_rows] - n, V)))
    edges = [_Edges(source=source, target=target, circuit=name,
                    weights=_row_block(circuits.circuit(name), rows))
             for rows, source in sources for name in EDGE_TYPES]
    return _Parts(nodes=nodes, edges=edges, meta={**meta, "wiring": "neuron"})


def hub_parts(factors: GraphFactors) -> _Parts:
    """The node and edge populations of the hub wiring ``A = pre @ post`` (module doc): every entry of both
    factors is an edge (zero entries excepted)."""
    meta = factors.meta
    n, N, d = meta["n_neurons"], meta.get("neurons_per_head"), factors.pre.shape[1]
    pre_ids, post_ids = factors.pre_ids, factors.post_ids
    model_ids = np.union1d(pre_ids[pre_ids < n], post_ids)
    nodes = [_neuron_nodes(model_ids, N), _Nodes("hubs", "point_neuron", {"hub": np.arange(d, dtype=np.int64)})]
    hubs = _End("hubs", np.arange(d), d)
    model_rows, input_rows = _split_rows(pre_ids, n)
    factor_blocks = [(_End("neurons", np.searchsorted(model_ids, pre_ids[model_rows]), model_ids.size), hubs,
                      factors.pre[model_rows])]
    if input_rows.stop > input_rows.start:
        V = int(meta.get("vocab_size", pre_ids.max() - n + 1))
        nodes.append(_input_nodes(V))
        factor_blocks.append((_End("inputs", pre_ids[input_rows] - n, V), hubs, factors.pre[input_rows]))
    factor_blocks.append((hubs, _End("neurons", np.searchsorted(model_ids, post_ids), model_ids.size),
                          factors.post))
    edges = [_Edges(source=source, target=target, circuit=name,
                    weights=sparse.csr_array(np.maximum(sign * W, 0.0)))
             for source, target, W in factor_blocks for name, sign in (("excitatory", 1.0), ("inhibitory", -1.0))]
    return _Parts(nodes=nodes, edges=edges, meta={**meta, "wiring": "hub"})


# -- writing ------------------------------------------------------------------------------------------------------

def check_output_folder(folder, overwrite: bool = False) -> Path:
    """``folder`` if a circuit may be written there: missing, empty, or (with ``overwrite``) a folder whose
    contents will be replaced; its parent must exist. Checked before any work starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"SONATA output '{folder}' is a file; expected a folder (it is created if missing)")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"SONATA output folder '{folder}' exists and is not empty; choose another folder or "
                         "replace it with --overwrite (overwrite=True)")
    if not folder.absolute().parent.is_dir():
        raise FileNotFoundError(f"cannot write '{folder}': folder '{folder.absolute().parent}' does not exist")
    return folder


def _sonata_file(h5py, path: Path):
    f = h5py.File(path, "w")
    f.attrs["magic"] = np.uint32(MAGIC)
    f.attrs["version"] = np.array(SONATA_VERSION, dtype=np.uint32)
    return f


def _write_nodes(h5py, path: Path, nodes: _Nodes) -> None:
    with _sonata_file(h5py, path) as f:
        g = f.create_group(f"nodes/{nodes.name}")
        g["node_type_id"] = np.full(nodes.size, NODE_TYPES[nodes.name], np.int64)
        g["node_group_id"] = np.zeros(nodes.size, np.int64)
        g["node_group_index"] = np.arange(nodes.size, dtype=np.int64)
        attributes = g.create_group("0")
        for key, values in nodes.attributes.items():
            attributes.create_dataset(key, data=values, dtype=h5py.string_dtype() if values.dtype == object else None)


def _chunks(indptr: np.ndarray, chunk_edges: int) -> list[tuple[int, int]]:
    """Row ranges of about ``chunk_edges`` edges each (a row is never split)."""
    cuts = np.searchsorted(indptr, np.arange(chunk_edges, indptr[-1], chunk_edges), side="right") - 1
    bounds = np.unique(np.concatenate([[0], cuts, [indptr.size - 1]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _index(group, name: str, n_nodes: int, nodes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """The SONATA index ``name``: runs ``[starts, ends)`` of edge ids, each of one node (``nodes``, the runs of a
    node consecutive), as ``range_to_edge_id``, and for each node its ranges, ``node_id_to_ranges``."""
    g = group.create_group(f"indices/{name}")
    node_to_ranges = np.zeros((n_nodes, 2), np.int64)
    if nodes.size:
        first = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]])
        node_to_ranges[nodes[first], 0] = first
        node_to_ranges[nodes[first], 1] = np.r_[first[1:], nodes.size]
    g["node_id_to_ranges"] = node_to_ranges
    g["range_to_edge_id"] = np.stack([starts, ends], axis=1).astype(np.int64).reshape(-1, 2)


def _write_edge_population(f, edges: _Edges, progress) -> int:
    A = edges.weights
    E = int(A.nnz)
    g = f.create_group(f"edges/{edges.name}")
    source = g.create_dataset("source_node_id", (E,), np.int64)
    target = g.create_dataset("target_node_id", (E,), np.int64)
    source.attrs["node_population"] = edges.source.population
    target.attrs["node_population"] = edges.target.population
    g["edge_type_id"] = np.full(E, EDGE_TYPES[edges.circuit], np.int64)
    g["edge_group_id"] = np.zeros(E, np.int64)
    g["edge_group_index"] = np.arange(E, dtype=np.int64)
    weight = g.create_group("0").create_dataset("syn_weight", (E,), np.float64)
    for r0, r1 in tqdm(_chunks(A.indptr, CHUNK_EDGES), desc=edges.name, unit="block", leave=False,
                       disable=not progress):
        lo, hi = int(A.indptr[r0]), int(A.indptr[r1])
        source[lo:hi] = np.repeat(edges.source.ids[r0:r1], np.diff(A.indptr[r0:r1 + 1]))
        target[lo:hi] = edges.target.ids[A.indices[lo:hi]]
        weight[lo:hi] = edges.sign * A.data[lo:hi]
    # source_to_target: rows are in source order, so each source node has one run of edges
    has = np.flatnonzero(np.diff(A.indptr))
    _index(g, "source_to_target", edges.source.size, edges.source.ids[has], A.indptr[has], A.indptr[has + 1])
    # target_to_source: edge ids by target (target ids increase with the column), cut into runs of consecutive
    # ids of one target
    order = np.argsort(A.indices, kind="stable")
    columns = A.indices[order]
    breaks = np.flatnonzero((np.diff(order) != 1) | (np.diff(columns) != 0)) + 1
    firsts, lasts = np.r_[0, breaks][:E], np.r_[breaks - 1, E - 1][:E]
    _index(g, "target_to_source", edges.target.size, edges.target.ids[columns[firsts]], order[firsts],
           order[lasts] + 1)
    return E


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    """A SONATA type table: space-separated columns (values must not contain spaces)."""
    lines = [" ".join(header)] + [" ".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def input_drive(tokens, clock: Clock = Clock()) -> tuple[np.ndarray, np.ndarray]:
    """The ``inputs`` spikes of a text: node ids (the bytes) and times in ms, one ``dt`` after each token's onset
    (NEST refuses a spike at 0 ms)."""
    tokens = np.asarray(tokens, np.int64).reshape(-1)
    return tokens, np.asarray(clock.onset_ms(np.arange(tokens.size)), np.float64).reshape(-1) + DT_MS


def write_spikes(path, populations: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A SONATA spike file (module doc): ``populations[name] = (node_ids, times_ms)``, written sorted by time,
    atomically."""
    h5py = _h5py()
    with atomic_path(path) as tmp, _sonata_file(h5py, tmp) as f:
        for name, (node_ids, times) in populations.items():
            node_ids, times = np.asarray(node_ids, np.int64).reshape(-1), np.asarray(times, np.float64).reshape(-1)
            if node_ids.shape != times.shape:
                raise ValueError(f"spikes of population {name!r}: {node_ids.size} node ids but {times.size} times")
            order = np.lexsort((node_ids, times))
            g = f.create_group(f"spikes/{name}")
            g.attrs.create("sorting", SORTING["by_time"], dtype=h5py.enum_dtype(SORTING, basetype="u1"))
            g.create_dataset("timestamps", data=times[order]).attrs["units"] = "ms"
            g.create_dataset("node_ids", data=node_ids[order].astype(np.uint64))
    return Path(path)


def monitor_spikes(monitor, clock: Clock = Clock()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The spikes a ``SpikeMonitor`` recorded, by SONATA population: ``<population>_layer<l>`` (global neuron
    ids, times in ms on ``clock``) and ``inputs``, the byte drive of the tokens it saw (:func:`input_drive`)."""
    spikes = {"inputs": input_drive(monitor.tokens, clock)}
    for layer in monitor.layers:
        for population in monitor.populations:
            token, step, neuron = monitor.spikes(layer, population)
            spikes[f"{population}_layer{layer}"] = (neuron, clock.spike_ms(token, step, monitor.spike_steps))
    return spikes


def _write_node_files(h5py, folder: Path, nodes: list[_Nodes]) -> list[dict]:
    """Each node population's HDF5 file and type table in ``folder/network``; returns the circuit config's
    ``nodes`` entries."""
    entries = []
    for p in nodes:
        _write_nodes(h5py, folder / f"network/{p.name}_nodes.h5", p)
        point = p.model_type == "point_neuron"
        _csv(folder / f"network/{p.name}_node_types.csv",
             ["node_type_id", "model_type", "model_template", "dynamics_params", "pop_name"],
             [[NODE_TYPES[p.name], p.model_type, f"nest:{STAND_IN_MODEL}" if point else "NONE",
               STAND_IN_FILE if point else "NONE", p.name]])
        entries.append({"nodes_file": f"$BASE_DIR/network/{p.name}_nodes.h5",
                        "node_types_file": f"$BASE_DIR/network/{p.name}_node_types.csv",
                        "populations": {p.name: {"type": p.model_type}}})
    return entries


def _write_edge_files(h5py, folder: Path, edges: list[_Edges], progress: bool) -> dict:
    """Every edge population in ``folder/network/edges.h5`` and the one type table; returns the circuit config's
    ``edges`` entry."""
    with _sonata_file(h5py, folder / "network/edges.h5") as f:
        for e in edges:
            _write_edge_population(f, e, progress)
    _csv(folder / "network/edge_types.csv", ["edge_type_id", "model_template", "delay", "circuit"],
         [[EDGE_TYPES[c], SYNAPSE_MODEL, DT_MS, c] for c in EDGE_TYPES])
    return {"edges_file": "$BASE_DIR/network/edges.h5", "edge_types_file": "$BASE_DIR/network/edge_types.csv",
            "populations": {e.name: {"type": "chemical"} for e in edges}}


def _circuit_config(node_entries: list[dict], edge_entry: dict) -> dict:
    return {"manifest": {"$BASE_DIR": "."},
            "components": {"point_neuron_models_dir": "$BASE_DIR/components/point_neuron_models"},
            "networks": {"nodes": node_entries, "edges": [edge_entry]}}


def _simulation_config(clock: Clock, tokens: np.ndarray | None, has_inputs: bool) -> dict:
    """A NEST run over the text's duration (one token without a text), driven by the input spike file when the
    circuit has input neurons."""
    n_tokens = 1 if tokens is None else max(1, tokens.size)
    simulation = {"manifest": {"$BASE_DIR": "."}, "network": "$BASE_DIR/circuit_config.json",
                  "target_simulator": "NEST",
                  "run": {"dt": DT_MS, "tstop": clock.duration_ms(n_tokens)},
                  "output": {"output_dir": "$BASE_DIR/output", "spikes_file": "spikes.h5"}}
    if has_inputs:
        simulation["inputs"] = {"bytes": {"input_type": "spikes", "module": "sonata",
                                          "input_file": f"$BASE_DIR/{INPUT_FILE}", "node_set": "inputs"}}
    return simulation


def stand_in_parameters(edges: list[_Edges], clock: Clock = Clock()) -> dict:
    """The stand-in neuron's NEST parameters for a circuit of ``edges`` (module doc): ``V_th`` the median weight of
    the excitatory edges from the input neurons (else of every excitatory edge, else of every edge; 1 mV without
    edges), ``tau_m`` one token of ``clock``, ``t_ref`` ``T_REF_MS``, rest and reset at 0 mV."""
    def weights(chosen):
        return np.concatenate([e.weights.data for e in chosen] or [np.zeros(0)])

    excitatory = [e for e in edges if e.circuit == "excitatory"]
    for chosen in ([e for e in excitatory if e.source.population == "inputs"], excitatory, edges):
        w = weights(chosen)
        if w.size:
            break
    threshold = float(np.median(w)) if w.size else 1.0
    return {"E_L": 0.0, "V_m": 0.0, "V_reset": 0.0, "V_th": threshold, "tau_m": clock.token_ms, "t_ref": T_REF_MS}


def _write(parts: _Parts, folder, *, tokens, clock: Clock, overwrite: bool, circuit: str,
           progress: bool | None) -> dict:
    """The files of the module doc for ``parts``, keeping the edge populations of ``circuit``, atomically."""
    h5py = _h5py()
    if circuit not in ("both", *EDGE_TYPES):
        raise ValueError(f"circuit must be 'excitatory', 'inhibitory' or 'both', got {circuit!r}")
    edges = [e for e in parts.edges if circuit in ("both", e.circuit)]
    folder = Path(folder)
    show = sum(e.weights.nnz for e in edges) >= PROGRESS_EDGES if progress is None else progress
    tokens = None if tokens is None or not parts.has_inputs else np.asarray(tokens, np.int64).reshape(-1)
    with atomic_folder(check_output_folder(folder, overwrite)) as tmp:
        for sub in ("network", "components/point_neuron_models", *(["inputs"] if parts.has_inputs else [])):
            (tmp / sub).mkdir(parents=True)
        node_entries = _write_node_files(h5py, tmp, parts.nodes)
        edge_entry = _write_edge_files(h5py, tmp, edges, show)
        stand_in = stand_in_parameters(edges, clock)
        (tmp / f"components/point_neuron_models/{STAND_IN_FILE}").write_text(json.dumps(stand_in, indent=2))
        if parts.has_inputs:
            write_spikes(tmp / INPUT_FILE,
                         {"inputs": input_drive(np.zeros(0, np.int64) if tokens is None else tokens, clock)})
        (tmp / "circuit_config.json").write_text(json.dumps(_circuit_config(node_entries, edge_entry), indent=2))
        (tmp / "simulation_config.json").write_text(
            json.dumps(_simulation_config(clock, tokens, parts.has_inputs), indent=2))
        taus = parts.meta.get("time_constants")
        about = {"graph": parts.meta, "token_ms": clock.token_ms,
                 "tokens": None if tokens is None else int(tokens.size),
                 "edges": {e.name: int(e.weights.nnz) for e in edges}, "stand_in_model": STAND_IN_MODEL,
                 "synapse_time_constants": None if taus is None else [
                     {"head": h, "tokens": tau, "ms": clock.duration_ms(tau)} for h, tau in enumerate(taus)]}
        (tmp / "bdh_graph.json").write_text(json.dumps(about, indent=2, default=str))
    return {"circuit_config": folder / "circuit_config.json", "simulation_config": folder / "simulation_config.json",
            "nodes": {p.name: p.size for p in parts.nodes}, "edges": {e.name: int(e.weights.nnz) for e in edges}}


def write_circuit(circuits: Circuits, folder, tokens=None, clock: Clock = Clock(), overwrite: bool = False,
                  circuit: str = "both", progress: bool | None = None) -> dict:
    """Write a neuron graph as a SONATA circuit in ``folder`` (module doc); return its two configs
    (``circuit_config``, ``simulation_config``) and the sizes of its node and edge populations (``nodes``,
    ``edges``).

    ``tokens`` (the bytes of a text) drive the input neurons of an exact-form graph on ``clock``; ``circuit``
    (``"excitatory"``, ``"inhibitory"`` or ``"both"``) chooses the edge populations; ``folder`` must be missing
    or empty unless ``overwrite``; a failed write leaves no partial circuit (and the old one intact).
    """
    return _write(circuit_parts(circuits), folder, tokens=tokens, clock=clock, overwrite=overwrite, circuit=circuit,
                  progress=progress)


def write_hub_circuit(factors: GraphFactors, folder, tokens=None, clock: Clock = Clock(), overwrite: bool = False,
                      circuit: str = "both", progress: bool | None = None) -> dict:
    """Write the hub wiring of a graph, ``A = pre @ post`` through its d hubs, as a SONATA circuit (module doc);
    otherwise as :func:`write_circuit`."""
    return _write(hub_parts(factors), folder, tokens=tokens, clock=clock, overwrite=overwrite, circuit=circuit,
                  progress=progress)


__all__ = ["write_circuit", "write_hub_circuit", "write_spikes", "monitor_spikes", "input_drive",
           "check_output_folder", "stand_in_parameters", "STAND_IN_MODEL"]
