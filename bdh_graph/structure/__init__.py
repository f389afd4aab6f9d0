"""Structure statistics of neuron graphs (the paper's section 5.5): degrees, power-law fits, modularity, null models, sweeps.

Plain functions on ``scipy.sparse`` graphs with ``A[i, j]`` = weight of the edge ``i -> j``; they never import
the network, training or plotting code.
"""
from .degrees import ccdf, in_degree, in_strength, out_degree, out_strength
from .modularity import ModularityResult, louvain, modularity
from .nulls import gnm_null, low_rank_null, rewired_null
from .powerlaw_fit import PowerLawFit, fit_power_law, sample_power_law
from .sweep import NULL_MODELS, SweepPoint, modularity_sweep

__all__ = [
    "ccdf", "in_degree", "in_strength", "out_degree", "out_strength",
    "ModularityResult", "louvain", "modularity",
    "gnm_null", "low_rank_null", "rewired_null",
    "PowerLawFit", "fit_power_law", "sample_power_law",
    "NULL_MODELS", "SweepPoint", "modularity_sweep",
]
