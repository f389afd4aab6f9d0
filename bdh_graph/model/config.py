"""Model configuration of BDH-GPU (docs/model.md section 1)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class BDHConfig:
    """Sizes of a BDH-GPU model; defaults equal the released code.

    ``N = mlp_internal_dim_multiplier * n_embd // n_head`` neurons per head, ``n = n_head * N`` in all.
    ``layer_norm=False`` selects the Normfree variant (every LayerNorm is the identity).
    ``damping=True`` gives each head a learned damping factor ``gamma_h`` in (0, 1): the synaptic write made at
    token s reaches the read at token t > s with weight ``gamma_h ** (t - s)`` (docs/model.md 7.3). Off, the
    state never decays, as in the released code.
    """

    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 4
    mlp_internal_dim_multiplier: int = 128
    vocab_size: int = 256
    dropout: float = 0.1
    layer_norm: bool = True
    damping: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "mlp_internal_dim_multiplier", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BDHConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BDHConfig.dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("layer_norm", "damping"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BDHConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if (self.mlp_internal_dim_multiplier * self.n_embd) % self.n_head:
            raise ValueError(
                f"BDHConfig: mlp_internal_dim_multiplier * n_embd = "
                f"{self.mlp_internal_dim_multiplier * self.n_embd} must be divisible by n_head = {self.n_head}"
            )
        if self.N % 2:
            raise ValueError(f"BDHConfig: neurons per head N = {self.N} must be even so that RoPE pairs exist")

    @property
    def N(self) -> int:
        """Neurons per head."""
        return self.mlp_internal_dim_multiplier * self.n_embd // self.n_head

    @property
    def n_neurons(self) -> int:
        """Neurons in all, ``n = n_head * N``."""
        return self.n_head * self.N

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "BDHConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BDHConfig: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)

    def replace(self, **changes) -> "BDHConfig":
        return dataclasses.replace(self, **changes)
