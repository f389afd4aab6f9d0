"""Experiments on the network: studies that run the simulator over text and report what they find (the working
memory: ``memory``). They use the rooms above them (network, model, text); the network never imports them."""
from .memory import MemoryResult, memory_experiments

__all__ = ["MemoryResult", "memory_experiments"]
