"""Experiments on the network: studies that combine the rooms above them (a graph's structure, the network run over
text or a task, the model's loss) and report what they find. ``memory``: the working memory (synapses erased,
forgetting, lesions); ``recall``: paired-associate recall, a memory with an address; ``emergence``: the structure of
G_x and the loss over the snapshots of a training run; ``hubs``: what a head's highest-degree neurons do (firing rate
against degree, the rich-club lesion). The network never imports them."""
from .memory import MemoryResult, memory_experiments

__all__ = ["MemoryResult", "memory_experiments"]
