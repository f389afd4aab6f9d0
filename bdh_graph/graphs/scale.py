"""The scale of the pruning threshold beta for one model: each graph's largest ``|G|`` and the beta at the paper's
edge density.

``Threshold(beta)`` keeps the edges with ``|G| >= beta``, so a beta means something only against the weights of
the model's own graphs, which differ from model to model by orders of magnitude: above the largest ``|G|``
nothing is left (refused by :func:`check_network_pruning`), and the paper's density,
``PAPER_EDGES_PER_NEURON`` edges per postsynaptic neuron in each circuit, sits at the weight of the
``paper_edge_count(n_post)``-th strongest excitatory edge.

The network (``bdh-graph validate``, ``step``, ``memory``) is wired by the exact form of the whole ``G_x`` and
``G_y``; ``bdh-graph analyze`` studies the analysis form of one head by default (``graphs.neuron_graphs``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .neuron_graphs import WHICH, graph_factors, product_graph
from .pruning import Strongest, Threshold, check_keeps_edges, paper_edge_count

SCALE_HINT = " (bdh-graph info lists the scale of beta of each graph)"


@dataclass(frozen=True)
class GraphScale:
    """How a threshold sees one graph: ``largest`` ``|G|`` (a beta above it keeps no edge) and ``paper_beta``, the
    weight of the ``paper_edges``-th strongest excitatory edge (``Threshold(paper_beta)`` keeps that many
    excitatory edges, the paper's density; 0 if the circuit has fewer edges)."""

    graph: str
    largest: float
    paper_beta: float
    paper_edges: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def graph_name(which: str, form: str, head: int | None) -> str:
    return f"G_{which} ({form} form, {'whole graph' if head is None else f'head {head}'})"


def graph_scale(model, which: str = "x", form: str = "analysis", head: int | None = None,
                progress: bool | None = None) -> GraphScale:
    """The :class:`GraphScale` of one graph (``which``, ``form``, ``head`` as in ``graphs.graph_factors``), from a
    single tiled pass that keeps each circuit's ``paper_edge_count(n_post)`` strongest edges."""
    factors = graph_factors(model, which, form, head)
    m = paper_edge_count(factors.shape[1])
    strongest = product_graph(factors, Strongest(m), progress)
    excitatory, inhibitory = strongest.excitatory.data, strongest.inhibitory.data
    largest = max(float(excitatory.max(initial=0.0)), float(inhibitory.max(initial=0.0)))
    paper_beta = float(excitatory.min()) if excitatory.size == m else 0.0
    return GraphScale(graph_name(which, form, head), largest, paper_beta, m)


def model_scales(model, progress: bool | None = None) -> dict[str, dict]:
    """Every graph's scale, as ``bdh-graph info`` lists it: for ``G_x`` and ``G_y``, the ``network`` (exact form,
    whole graph: the network's wiring) and each head in the analysis form (``heads``: what ``analyze`` studies)."""
    return {f"G_{which}": {"network": graph_scale(model, which, "exact", None, progress),
                           "heads": [graph_scale(model, which, "analysis", head, progress)
                                     for head in range(model.config.n_head)]}
            for which in WHICH}


def check_network_pruning(model, prune, name: str = "beta", progress: bool | None = None) -> list[GraphScale]:
    """Refuse ``prune`` for a neuron-wired network of ``model`` if it keeps no edge of ``G_x`` or of ``G_y`` (exact
    form, whole graph), naming the largest ``|G|`` and the beta at the paper's density; return both scales.

    Only a threshold can empty a graph, so only ``Threshold`` costs the pass over each graph; other rules return
    ``[]`` at once. ``name`` is how the caller knows beta (``"--beta"`` on the command line).
    """
    if not isinstance(prune, Threshold):
        return []
    scales = {which: graph_scale(model, which, "exact", None, progress) for which in WHICH}
    # one beta prunes both graphs: the example keeps edges in both, the lower of their paper-density betas
    sparsest = min((which for which in WHICH if scales[which].paper_beta > 0),
                   key=lambda which: scales[which].paper_beta, default=None)
    example = ("" if sparsest is None else f", e.g. {scales[sparsest].paper_beta:.4g}, the paper's edge density "
               f"of G_{sparsest} (one beta prunes both G_x and G_y)")
    for scale in scales.values():
        check_keeps_edges(prune, scale.largest, f"{scale.graph}, the network's wiring", name, example + SCALE_HINT)
    return list(scales.values())

