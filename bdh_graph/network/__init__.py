"""The simulator room: neurons (trace, gains, tokens), synapses (sigma, rho), wirings, spikes, the network, its
monitors and state files, and validation against the tensor model."""
from ..errors import NonFiniteError
from .network import Network, build_network
from .monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor, SynapseMonitor, load_spikes
from .validation import ValidationResult, validate

__all__ = ["Network", "NonFiniteError", "build_network", "ActivityMonitor", "EventMonitor", "SparsityMonitor",
           "SpikeMonitor", "SynapseMonitor", "load_spikes", "ValidationResult", "validate"]
