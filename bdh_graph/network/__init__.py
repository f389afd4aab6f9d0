"""The simulator room: neurons (trace, gains, tokens), synapses (sigma, rho), wirings, channels (rates or spikes),
the network, its monitors, state files and recordings, synapse addresses, and validation against the tensor model.
The experiments that run it over text live in ``bdh_graph.experiments``, below it."""
from ..errors import NonFiniteError
from .network import Network, build_network
from .monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor, SynapseMonitor, load_spikes
from .address import Synapse, parse_synapse
from .recordings import RunRecording, load_recording
from .validation import ValidationResult, validate

__all__ = ["Network", "NonFiniteError", "build_network", "ActivityMonitor", "EventMonitor", "SparsityMonitor",
           "SpikeMonitor", "SynapseMonitor", "load_spikes", "Synapse", "parse_synapse", "RunRecording",
           "load_recording", "ValidationResult", "validate"]
