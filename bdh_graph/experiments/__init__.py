"""Experiments on the network: what a neuroscientist would run on a brain (paired-associate recall, ...)."""
