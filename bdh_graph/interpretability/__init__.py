"""Interpretability on the tensor model: neuron-level synapse state, monosemantic synapses, activity sparsity."""
