"""Neuron graphs of a model (G_x, G_y as excitatory and inhibitory circuits), pruning, tiled extraction, exports."""
from .pruning import Prune, Strongest, Threshold, TopK, check_count, check_prune
from .neuron_graphs import (BLOCK_BYTES, CIRCUITS, FORMS, WHICH, Circuits, GraphFactors, dense_neuron_graph,
                            entry_histogram, graph_factors, neuron_graph, product_graph)

__all__ = ["Prune", "Strongest", "Threshold", "TopK", "check_count", "check_prune", "BLOCK_BYTES", "CIRCUITS", "FORMS",
           "WHICH", "Circuits", "GraphFactors", "dense_neuron_graph", "entry_histogram", "graph_factors",
           "neuron_graph", "product_graph"]
