"""Experiments on the network: studies that run the simulator over text or a task and report what they find (the
working memory: ``memory``; paired-associate recall: ``recall``). They use the rooms above them (network, model,
text); the network never imports them."""
from .memory import MemoryResult, memory_experiments

__all__ = ["MemoryResult", "memory_experiments"]
