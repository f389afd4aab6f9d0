"""bdh_graph: the BDH (Dragon Hatchling) language model as an explicit graph of neurons and Hebbian synapses."""
from .config import BDHConfig
from .tensor import BDH, RecurrentState
from .checkpoints import load_model, save_model
from .graphs import Circuits, Threshold, TopK, neuron_graph
from .network import Network, NonFiniteError, build_network
from .monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor, SynapseMonitor, load_spikes
from .validation import ValidationResult, validate

__all__ = ["BDHConfig", "BDH", "RecurrentState", "load_model", "save_model", "Circuits", "Threshold", "TopK",
           "neuron_graph", "Network", "NonFiniteError", "build_network", "ActivityMonitor", "EventMonitor",
           "SparsityMonitor", "SpikeMonitor", "SynapseMonitor", "load_spikes", "ValidationResult", "validate"]
