"""Runs on Dask (``bdh_graph.distributed``): on a LocalCluster of 2 worker processes the extraction, ``export --head
all``, ``analyze --head 0``, the concept-synapse search, the memory experiments and a run's series of snapshots
(``emergence``) equal the in-process run (edges
bit for bit, Q and alpha exactly, the same seeds); the only worker of a cluster, killed in the middle of an
extraction, takes the scattered factors with it, yet the extraction loses and duplicates no edge; a bad
scheduler is refused at once, naming the flag.

One cluster serves the module (starting one costs seconds); the CLI reaches it by its address."""
from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np
import pytest
from helpers import TINY, random_model, run_json, tiny_checkpoint, tiny_run
from scipy import sparse

from bdh_graph.cli import main
from bdh_graph.experiments.emergence import emergence
from bdh_graph.distributed import CONNECT_TIMEOUT, Scheduler, engine, parse_scheduler, task_rng
from bdh_graph.experiments.memory import memory_experiments
from bdh_graph.graphs import Strongest, Threshold, TopK, graph_factors, neuron_graphs, product_graph
from bdh_graph.graphs.neuron_graphs import strongest_of
from bdh_graph.interpretability.monosemantic import find_concept_synapses
from bdh_graph.text.concepts import matched_sentences

distributed = pytest.importorskip("distributed", reason="needs the distributed extra: pip install -e '.[distributed]'")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL_TILES = 2048  # bytes: TINY's whole graph (64 x 64 float64 entries) in 16 row tiles of 4 rows


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), 0, 15.0)


def same_csr(a: sparse.csr_array, b: sparse.csr_array) -> bool:
    """Bit for bit: the same structure and the same stored weights in the same order."""
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data))


def test_strongest_of_breaks_ties_by_pair_whatever_the_order():
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    weights = rng.choice([0.5, 1.0, 2.0], 400)  # many ties at every cut
    for m in (1, 37, 150, 399):
        order = np.lexsort((cols, rows, -weights))[:m]  # the obvious reference: by weight, then (row, col)
        for perm in (np.arange(400), rng.permutation(400)):
            r, c, w = strongest_of(rows[perm], cols[perm], weights[perm], m)
            assert sorted(zip(r, c, w)) == sorted(zip(rows[order], cols[order], weights[order]))


@pytest.mark.parametrize("prune", [Strongest(300), Threshold(0.05), TopK(3), None], ids=repr)
def test_tiles_on_the_cluster_give_the_in_process_edges(client, prune):
    factors = graph_factors(random_model(TINY, 1), form="exact")  # 320 x 64: input neurons too
    here = product_graph(factors, prune, block_bytes=SMALL_TILES)
    there = product_graph(factors, prune, block_bytes=SMALL_TILES, scheduler=client)
    assert here.n_edges > 0
    for name in ("excitatory", "inhibitory"):
        assert same_csr(here.circuit(name), there.circuit(name))
    assert here.meta == there.meta


def test_export_whole_graph_on_the_cluster_equals_in_process(client, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(neuron_graphs, "BLOCK_BYTES", SMALL_TILES)
    address = client.scheduler.address
    for name, scheduler in (("here", "none"), ("there", address)):
        run_json(capsys, "export", checkpoint, "--head", "all", "--out", str(tmp_path / f"{name}.npz"),
                 "--scheduler", scheduler)
    for circuit in ("excitatory", "inhibitory"):
        here, there = (sparse.load_npz(tmp_path / f"{name}.{circuit}.npz") for name in ("here", "there"))
        assert here.nnz == round(46820 / 8192 * TINY.n_neurons)  # the paper's density, n = 64
        assert same_csr(sparse.csr_array(here), sparse.csr_array(there))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")  # powerlaw's own, unsilenced
def test_analyze_head_0_on_the_cluster_equals_in_process(client, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(neuron_graphs, "BLOCK_BYTES", SMALL_TILES)
    reports = {}
    for name, scheduler in (("here", "none"), ("there", client.scheduler.address)):
        reports[name] = run_json(capsys, "analyze", checkpoint, "--head", "0", "--seeds", "2", "--bootstrap", "5",
                                 "--seed", "7", "--null-draws", "2", "--out", str(tmp_path / name),
                                 "--scheduler", scheduler)
    here, there = reports["here"], reports["there"]
    for key in ("graph", "degrees", "power_law", "modularity", "sweep"):
        assert here[key] == there[key], key  # every number equal, Q and alpha exactly
    assert len(here["sweep"]) > 2 and all(set(p["nulls"]) == {"gnm", "rewired", "low_rank"} for p in here["sweep"])
    assert here["modularity"]["null_draws"]["draws"] == 2  # the null draws too, each a task on the cluster
    assert (tmp_path / "here" / "communities.csv").read_text() == (tmp_path / "there" / "communities.csv").read_text()


def test_concept_synapses_on_the_cluster_equal_in_process(client):
    model = random_model(TINY, 2)
    concept, contrast = matched_sentences("currency", 12, 0)
    found = [find_concept_synapses(model, concept, contrast, top_k=3, candidates=20, batch_size=4,
                                   scheduler=scheduler).to_dict() for scheduler in (None, client)]
    assert found[0]["synapses"] and found[0] == found[1]


def test_memory_experiments_on_the_cluster_equal_in_process(client):
    model = random_model(TINY, 3)
    runs = [memory_experiments(model, "Dragons hatch from eggs; dragons hatch.", backend="numpy",
                               time_constants=[2.0, 8.0], strongest=(5,), repeat_bytes=12,
                               scheduler=scheduler).to_dict() for scheduler in (None, client)]
    for run in runs:
        run.pop("seconds")
    assert runs[0] == runs[1]


def test_task_seeds_depend_on_the_run_and_the_task_only():
    assert task_rng(3, 1, 2).integers(2**62) == task_rng(3, 1, 2).integers(2**62)
    assert len({task_rng(*key).integers(2**62) for key in [(3, 1, 2), (3, 2, 1), (4, 1, 2), (3, 1)]}) == 4


@pytest.mark.parametrize("text, message", [
    ("local:0", "a LocalCluster needs N >= 1 worker processes (local:N), got '0'"),
    ("local:two", "a LocalCluster needs N >= 1 worker processes (local:N), got 'two'"),
    ("tcp://10.0.0.5", "expected a scheduler address tcp://host:port"),
    ("10.0.0.5:8786", "expected one of none, local, local:N"),
])
def test_bad_schedulers_are_refused_naming_the_flag(capsys, text, message):
    with pytest.raises(ValueError, match="scheduler"):
        parse_scheduler(text)
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--out", "g.npz", "--scheduler", text])
    assert exit_.value.code == 2
    assert f"argument --scheduler: '{text}': {message}" in capsys.readouterr().err


def test_parse_scheduler_forms():
    assert parse_scheduler("none") == Scheduler("none")
    assert parse_scheduler("local") == Scheduler("local")
    assert parse_scheduler("local:3") == Scheduler("local", 3)
    assert parse_scheduler("tcp://node7:8786") == Scheduler("address", address="tcp://node7:8786")


def test_an_unreachable_scheduler_is_a_clear_error_at_once(checkpoint, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    code = main(["export", checkpoint, "--out", str(tmp_path / "g.npz"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 2 and time.perf_counter() - started < CONNECT_TIMEOUT
    err = capsys.readouterr().err
    assert f"bdh-graph export: error: scheduler 'tcp://127.0.0.1:{port}': cannot connect" in err
    assert "is a Dask scheduler running there?" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_without_dask_the_flag_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(SystemExit):
        main(["export", "--out", "g.npz", "--scheduler", "local:2"])
    assert 'needs distributed (not installed here): pip install "bdh-graph[distributed]"' in capsys.readouterr().err
    with engine("none") as eng:  # the default needs no Dask
        assert eng.in_process


class KillFirstTile(distributed.WorkerPlugin):
    """Kills its worker process (as a crash would) when the first tile of an extraction starts on it; ``flag`` is
    created by the one kill, so the restarted worker, and the other, run their tiles."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def setup(self, worker) -> None:
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and str(key).startswith("tile_edges"):
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os._exit(1)


def test_a_worker_killed_during_extraction_loses_and_duplicates_no_edge(tmp_path):
    factors = graph_factors(random_model(TINY, 4), form="exact")
    here = product_graph(factors, Threshold(0.02), block_bytes=SMALL_TILES)  # 80 tiles, thousands of edges
    flag = tmp_path / "killed"
    # one worker, restarted by its nanny: its death always loses the scattered factors, which Dask cannot rebuild
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            client.register_plugin(KillFirstTile(str(flag)), name="kill-first-tile")
            there = product_graph(factors, Threshold(0.02), block_bytes=SMALL_TILES, scheduler=client)
    assert flag.exists()  # the worker did die in the middle of the extraction
    assert here.n_edges > 1000
    for name in ("excitatory", "inhibitory"):
        assert same_csr(here.circuit(name), there.circuit(name))


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the module's cluster holds Dask's default port
def test_a_local_cluster_is_started_announced_and_closed():
    factors = graph_factors(random_model(TINY, 5))
    told = []
    with engine("local:1", announce=told.append) as eng:
        assert eng.threads() == 1
        circuits = product_graph(factors, TopK(2), block_bytes=SMALL_TILES, scheduler=eng)
        cluster_client = eng.client
    assert told and told[0].startswith("a LocalCluster of 1 worker process (1 thread each); dashboard http://")
    assert cluster_client.status == "closed"
    # the same tiles in this process (other tiles may round a weight's last bit differently)
    assert same_csr(circuits.excitatory, product_graph(factors, TopK(2), block_bytes=SMALL_TILES).excitatory)


def test_emergence_on_dask_equals_the_in_process_run(client, tmp_path):
    run = tiny_run(tmp_path / "run", steps=(0, 2))
    options = dict(text="Dragons hatch from eggs.", seeds=2, n_bootstrap=5, seed=1, backend="numpy")
    here = emergence(run, **options)
    there = emergence(run, **options, scheduler=client)  # one task a snapshot
    assert there.snapshots == here.snapshots
