"""bdh_graph: the BDH (Dragon Hatchling) language model as an explicit graph of neurons and Hebbian synapses.

Rooms, in the order data flows through them: ``model`` (config, tensor BDH, checkpoints, training) -> ``text``
(byte tokens, default corpus, concept sentences) -> ``graphs`` (neuron graphs, pruning, exports) -> ``network``
(neurons, synapses, wirings, spikes, monitors, state files, validation; run by ``kernels``) ->
``interpretability`` and ``structure`` (statistics) -> ``plots`` and ``interop`` (SONATA circuits, NWB
recordings); ``cli`` is the ``bdh-graph`` command.
"""
from .errors import (BDHGraphError, CheckpointError, FileFormatError, MissingExtraError, MonitorError, NonFiniteError,
                     RunError, StateMismatchError)
from .model import BDH, BDHConfig, RecurrentState, load_model, save_model
from .graphs import Circuits, Threshold, TopK, neuron_graph
from .network import (ActivityMonitor, EventMonitor, Network, SparsityMonitor, SpikeMonitor, Synapse, SynapseMonitor,
                      ValidationResult, build_network, load_recording, load_spikes, validate)

__all__ = ["BDHConfig", "BDH", "RecurrentState", "load_model", "save_model", "Circuits", "Threshold", "TopK",
           "neuron_graph", "Network", "NonFiniteError", "build_network", "ActivityMonitor", "EventMonitor",
           "SparsityMonitor", "SpikeMonitor", "SynapseMonitor", "load_spikes", "ValidationResult", "validate",
           "Synapse", "load_recording", "BDHGraphError", "CheckpointError", "FileFormatError", "MissingExtraError", "MonitorError",
           "RunError", "StateMismatchError"]
