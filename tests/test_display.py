"""What a model, a network and a structure analysis show of themselves in a notebook (``_repr_html_``)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from helpers import TINY, random_model

from bdh_graph import TopK, build_network, neuron_graph
from bdh_graph.structure.report import analyze_structure

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Table(HTMLParser):
    """The caption and the rows {header: cell} of a summary table, as a browser would read them."""

    def __init__(self, html: str):
        super().__init__()
        self.caption, self.rows, self._tag, self._key = "", {}, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self._tag = tag

    def handle_data(self, data):
        if self._tag == "caption" or self._tag == "b":
            self.caption += data
        elif self._tag == "th":
            self._key = data
        elif self._tag == "td":
            self.rows[self._key] = data


def test_a_model_shows_its_sizes():
    model = random_model(TINY, 0)
    table = Table(model._repr_html_())
    assert table.caption == "BDH (tensor model)"
    assert table.rows["layers L (one set of weights)"] == "2" and table.rows["neurons n = h N"] == "64"
    assert table.rows["parameters"] == str(2 * 2 * 16 * 32 + 64 * 16 + 2 * 256 * 16)  # D_x, D_y, E, embed, lm_head
    assert table.rows["dtype, device"] == "float64, cpu" and table.rows["LayerNorm"] == "yes"


def test_a_network_shows_its_wiring_mode_and_backend_and_what_it_has_done():
    model = random_model(TINY, 0)
    hub = build_network(model, wiring="hub", backend="numpy")
    hub.run("abc", progress=False)
    table = Table(hub._repr_html_())
    assert table.rows["wiring"] == "hub: n + V neurons, d = 16 hubs" and table.rows["mode"] == "rate"
    assert table.rows["backend, dtype"] == "numpy on cpu, float64" and table.rows["tokens stepped"] == "3"
    assert table.rows["synaptic events so far"] == f"{hub.events:,}" and hub.events > 0
    spiking = build_network(model, wiring="neuron", prune=TopK(4), backend="numpy", mode="spike", spike_steps=3,
                            seed=0)
    table = Table(spiking._repr_html_())
    assert table.rows["wiring"] == "neuron: n + V neurons, pruned by TopK(k=4)"
    assert table.rows["mode"] == "spike, K = 3 micro-steps" and table.rows["spikes so far"] == "0"
    assert table.rows["edges"] == ", ".join(f"{name} {m:,}" for name, m in spiking.n_edges.items())


def test_a_structure_analysis_shows_its_verdicts():
    model = random_model(TINY, 0)
    analysis = analyze_structure(neuron_graph(model, head=0, prune=TopK(6)), seeds=1, n_bootstrap=0)
    table = Table(analysis._repr_html_())
    assert table.caption == "structure analysis"
    assert re.fullmatch(rf"32 nodes, {analysis.n_edges} edges \(excitatory circuit, weights >= beta = \S+\)",
                        table.rows["graph"])
    assert table.rows["modularity"] == analysis.modularity_verdict()
    for k in ("in", "out"):
        fit = analysis.fits[k]
        assert table.rows[f"{k}-degree"] == (fit if isinstance(fit, str) else fit.verdict)
