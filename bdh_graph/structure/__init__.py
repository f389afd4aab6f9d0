"""Structure statistics of neuron graphs (the paper's section 5.5): degrees, power-law fits, modularity, null models,
sweeps over edge counts, Q against many draws of each null (``significance``), and the report that sets a model
beside a baseline (``report``).

Plain functions on ``scipy.sparse`` graphs with ``A[i, j]`` = weight of the edge ``i -> j``; they never import
the network, training or plotting code (``baseline`` builds an untrained model from the model room's ``BDH``).
"""
from .degrees import ccdf, in_degree, in_strength, out_degree, out_strength
from .modularity import ModularityResult, giant_component_share, louvain, modularity, modularity_terms
from .nulls import gnm_null, low_rank_null, rewired_null
from .powerlaw_fit import ALPHA_RANGE, PowerLawFit, fit_power_law, sample_power_law
from .significance import NullDistribution, null_distribution
from .sweep import LADDER, NULL_MODELS, SweepPoint, ladder_counts, modularity_sweep

__all__ = [
    "ccdf", "in_degree", "in_strength", "out_degree", "out_strength",
    "ModularityResult", "giant_component_share", "louvain", "modularity", "modularity_terms",
    "gnm_null", "low_rank_null", "rewired_null",
    "ALPHA_RANGE", "PowerLawFit", "fit_power_law", "sample_power_law",
    "NullDistribution", "null_distribution",
    "LADDER", "NULL_MODELS", "SweepPoint", "ladder_counts", "modularity_sweep",
]
