"""The simulator room: neurons (trace, gains, tokens), synapses (sigma, rho), wirings, and the network."""
from .network import Network, NonFiniteError, build_network

__all__ = ["Network", "NonFiniteError", "build_network"]
