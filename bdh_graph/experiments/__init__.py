"""Experiments that combine the rooms above: a graph's structure, the network run on text and the model's loss.

``emergence`` follows the structure of G_x and the loss over the snapshots of a training run; ``hubs`` asks what a
head's highest-degree neurons do (firing rate against degree, and the rich-club lesion).
"""
