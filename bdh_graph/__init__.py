"""bdh_graph: the BDH (Dragon Hatchling) language model as an explicit graph of neurons and Hebbian synapses.

Rooms, each importing only those before it (README, "What is inside"; tests/test_rooms.py checks it): the ground,
``errors`` -> ``files`` -> ``distributed`` (tasks in this process or on Dask); then in the order data flows,
``text`` (byte tokens, default corpus, concept sentences) -> ``model`` (config, tensor BDH, checkpoints, training)
-> ``graphs`` (neuron graphs, pruning, exports) -> ``kernels`` (where the network runs; arrays only) -> ``network``
(neurons, synapses, wirings, spikes, monitors, state files, validation) -> ``interop`` (SONATA circuits, NWB
recordings) -> ``interpretability`` and ``structure`` (statistics) -> ``experiments`` (working memory) -> ``plots``
-> ``cli`` (the ``bdh-graph`` command).
"""
from .errors import (BDHGraphError, CheckpointError, FileFormatError, GraphInputError, MissingExtraError, MonitorError,
                     NonFiniteError, NotAGraphError, RunError, StateMismatchError)
from .model import BDH, BDHConfig, RecurrentState, load_model, save_model
from .graphs import Circuits, Threshold, TopK, neuron_graph
from .network import (ActivityMonitor, EventMonitor, Network, SparsityMonitor, SpikeMonitor, Synapse, SynapseMonitor,
                      ValidationResult, build_network, load_recording, load_spikes, validate)
from .experiments import memory_experiments

__all__ = ["BDHConfig", "BDH", "RecurrentState", "load_model", "save_model", "Circuits", "Threshold", "TopK",
           "neuron_graph", "Network", "NonFiniteError", "build_network", "ActivityMonitor", "EventMonitor",
           "SparsityMonitor", "SpikeMonitor", "SynapseMonitor", "load_spikes", "ValidationResult", "validate",
           "Synapse", "load_recording", "memory_experiments", "BDHGraphError", "CheckpointError", "FileFormatError",
           "MissingExtraError", "MonitorError", "GraphInputError", "NotAGraphError", "RunError", "StateMismatchError"]
