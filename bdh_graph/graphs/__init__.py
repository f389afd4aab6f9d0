"""Neuron graphs of a model (G_x, G_y as excitatory and inhibitory circuits), pruning, tiled extraction, exports."""
from .pruning import (PAPER_EDGES_PER_NEURON, Prune, Strongest, Threshold, TopK, check_count, check_keeps_edges,
                      check_prune, paper_edge_count, prune_from_options)
from .neuron_graphs import (BLOCK_BYTES, CIRCUITS, FORMS, WHICH, Circuits, Extraction, GraphFactors,
                            dense_neuron_graph, entry_histogram, extract, graph_factors, neuron_graph, product_graph)
from .export import FORMATS, circuit_paths, read_graph, write_graph

__all__ = ["PAPER_EDGES_PER_NEURON", "Prune", "Strongest", "Threshold", "TopK", "check_count", "check_keeps_edges",
           "check_prune", "paper_edge_count", "prune_from_options", "BLOCK_BYTES", "CIRCUITS", "FORMS", "WHICH",
           "Circuits", "Extraction", "GraphFactors", "dense_neuron_graph", "entry_histogram", "extract",
           "graph_factors", "neuron_graph", "product_graph", "FORMATS", "circuit_paths", "read_graph", "write_graph"]
