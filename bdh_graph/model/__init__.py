"""The model: configuration, the tensor form BDH-GPU (parallel and recurrent), checkpoints, training."""
from .config import BDHConfig
from .tensor import BDH, RecurrentState
from .checkpoints import load_model, save_model

__all__ = ["BDHConfig", "BDH", "RecurrentState", "load_model", "save_model"]
