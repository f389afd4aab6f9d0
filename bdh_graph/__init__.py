"""bdh_graph: the BDH (Dragon Hatchling) language model as an explicit graph of neurons and Hebbian synapses."""
from .config import BDHConfig
from .tensor import BDH, RecurrentState

__all__ = ["BDHConfig", "BDH", "RecurrentState"]
