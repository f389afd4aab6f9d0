"""Checkpoints: the project's safetensors format, the released ``.pt`` state_dict, and the bundled model.

- Project format: one ``.safetensors`` file, the config as JSON in its metadata (key ``bdh_config``).
- Released format: a ``.pt`` file holding a plain ``state_dict`` (``encoder``, ``encoder_v``, ``decoder``,
  ``embed.weight``, ``lm_head``, ``attn.freqs``). It is read with ``torch.load(weights_only=True)``, which
  never unpickles arbitrary objects. Sizes are inferred from the shapes; ``n_layer`` cannot be, so it is the
  released 6 unless given. The released code has no damping: a released file loads undamped, and a damped model
  cannot be saved in this format.
- A damped model (``BDHConfig.damping``) has one more tensor, ``attn.damping`` (n_head,): the free parameter ``p``
  of the damping factors ``gamma = sigmoid(p)``, each of which must lie strictly inside (0, 1) in float64.

Every checkpoint is checked (keys, shapes, dtypes, finite values, RoPE frequencies) before a model is built; a
file that fails a check (or a folder given as a checkpoint) raises ``CheckpointError`` naming the file, a missing
one ``FileNotFoundError``. Saving goes through a temporary file, so a failed save leaves the old file intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..files import atomic_path
from .config import BDHConfig
from .tensor import BDH, rope_frequencies

BUNDLED_MODEL = Path(__file__).parent.parent / "data" / "bdh-small.safetensors"
CONFIG_KEY = "bdh_config"
FORMAT_KEY = "format"
FORMAT = "bdh_graph/1"
RELEASED_N_LAYER = 6
CHECKPOINT_KEYS = ("attn.freqs", "decoder", "embed.weight", "encoder", "encoder_v", "lm_head")
DAMPING_KEY = "attn.damping"
COMPILED_PREFIX = "_orig_mod."  # torch.compile wraps the released model; its state_dict keys carry this prefix


def expected_shapes(config: BDHConfig) -> dict[str, tuple[int, ...]]:
    h, d, N, V = config.n_head, config.n_embd, config.N, config.vocab_size
    return {
        "encoder": (h, d, N),
        "encoder_v": (h, d, N),
        "decoder": (h * N, d),
        "embed.weight": (V, d),
        "lm_head": (d, V),
        "attn.freqs": (1, 1, 1, N),
        **({DAMPING_KEY: (h,)} if config.damping else {}),
    }


def _sniff_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK":
        return "pt"  # torch.save writes a zip archive
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"  # 8-byte little-endian header length, then JSON
    raise CheckpointError(
        f"checkpoint '{path}': not a checkpoint (expected a .safetensors file or a torch .pt state_dict)"
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"checkpoint '{path}': unreadable safetensors file ({err})") from err
    return tensors, _stored_config(metadata, path)


def _stored_config(metadata: dict, path: Path) -> dict | None:
    """The config a project safetensors file keeps in its metadata, as a dict (None when it has none)."""
    if CONFIG_KEY not in metadata:
        return None
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint '{path}': metadata '{CONFIG_KEY}' is not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint '{path}': metadata '{CONFIG_KEY}' must be a JSON object")
    return config


def read_config(path: str | os.PathLike) -> BDHConfig:
    """The config of a checkpoint: of a project ``.safetensors`` file from its metadata alone, without reading a
    tensor; of any other file by loading it (``load_model``)."""
    path = Path(path)
    if path.is_file() and _sniff_format(path) == "safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                stored = _stored_config(f.metadata() or {}, path)
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"checkpoint '{path}': unreadable safetensors file ({err})") from err
        if stored is not None:
            try:
                return BDHConfig.from_dict(stored)
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"checkpoint '{path}': invalid config ({err})") from err
    return load_model(path).config


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip or a pickle that weights_only refuses
        raise CheckpointError(f"checkpoint '{path}': unreadable torch file ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"checkpoint '{path}': expected a state_dict (a dict of tensors), "
                              f"got {type(obj).__name__}")
    state = {k.removeprefix(COMPILED_PREFIX): v for k, v in obj.items()}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint '{path}': entry '{key}' is a {type(value).__name__}, expected a tensor")
    return state


def infer_config(state: dict[str, torch.Tensor], where: str, **overrides) -> BDHConfig:
    """Config of a released-format state_dict, from its shapes (``n_layer`` defaults to the released 6)."""
    for key in ("encoder", "embed.weight"):
        if key not in state:
            raise CheckpointError(f"checkpoint '{where}': missing key '{key}'; expected keys {list(CHECKPOINT_KEYS)}")
    if state["encoder"].dim() != 3:
        raise CheckpointError(
            f"checkpoint '{where}': encoder has shape {tuple(state['encoder'].shape)}, expected (n_head, n_embd, N)"
        )
    h, d, N = state["encoder"].shape
    if (N * h) % d:
        raise CheckpointError(f"checkpoint '{where}': encoder shape {(h, d, N)} gives N*h/d = {N * h / d}, "
                              "not an integer")
    values = dict(n_layer=RELEASED_N_LAYER, n_embd=d, n_head=h, mlp_internal_dim_multiplier=N * h // d,
                  vocab_size=state["embed.weight"].shape[0])
    values.update(overrides)
    return BDHConfig(**values)


def check_state(state: dict[str, torch.Tensor], config: BDHConfig, where: str) -> None:
    """Refuse a state_dict whose keys, shapes, dtypes, values or RoPE frequencies do not fit ``config``."""
    shapes = expected_shapes(config)
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    if missing or unexpected:
        why = " (a damped model's checkpoint has attn.damping)" if DAMPING_KEY in missing + unexpected else ""
        raise CheckpointError(
            f"checkpoint '{where}': missing keys {missing}, unexpected keys {unexpected}; "
            f"expected exactly {sorted(shapes)}{why}"
        )
    for key, shape in shapes.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise CheckpointError(
                f"checkpoint '{where}': {key} has shape {tuple(tensor.shape)}, config expects {shape} "
                f"(n_embd={config.n_embd}, n_head={config.n_head}, N={config.N}, vocab_size={config.vocab_size})"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"checkpoint '{where}': {key} has dtype {tensor.dtype}, expected a floating dtype")
        if not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"checkpoint '{where}': {key} holds {bad} non-finite values (NaN or inf)")
    freqs = state["attn.freqs"].reshape(-1).double()
    if not torch.allclose(freqs, rope_frequencies(config.N, torch.float64), rtol=1e-6, atol=0.0):
        raise CheckpointError(
            f"checkpoint '{where}': attn.freqs differ from the RoPE frequencies of N={config.N} (theta=2**16)"
        )
    if config.damping:
        gamma = torch.sigmoid(state[DAMPING_KEY].double())
        outside = [round(float(g), 6) for g in gamma if not 0.0 < float(g) < 1.0]
        if outside:
            raise CheckpointError(f"checkpoint '{where}': {DAMPING_KEY} gives damping factors {outside}, expected "
                                  f"each gamma = sigmoid({DAMPING_KEY}) strictly inside (0, 1)")


def load_model(path: str | os.PathLike | None = None, **config_overrides) -> BDH:
    """Load a model in eval mode: ``path=None`` gives the bundled pretrained model.

    ``config_overrides`` replace fields of the stored (or inferred) config, e.g. ``n_layer=4`` for a released
    ``.pt`` file (which cannot record its depth) or ``dropout=0.0``. A size that contradicts the weights is
    refused with an error naming the tensor and both shapes.
    """
    path = Path(path) if path is not None else BUNDLED_MODEL
    if path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' is a folder; give the model file inside it, e.g. "
                              f"{path / _model_file_in(path)}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    fmt = _sniff_format(path)
    if fmt == "safetensors":
        state, stored = _read_safetensors(path)
        if stored is None:
            config = infer_config(state, str(path), **config_overrides)
        else:
            try:
                config = BDHConfig.from_dict({**stored, **config_overrides})
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"checkpoint '{path}': invalid config ({err})") from err
    else:
        state = _read_state_dict(path)
        config = infer_config(state, str(path), **config_overrides)
        if config.damping:
            raise CheckpointError(f"checkpoint '{path}': a released .pt checkpoint has no damping to load (the "
                                  "released code has none); load it undamped, without damping=True")
    check_state(state, config, str(path))
    model = BDH(config).to(dtype=state["encoder"].dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _model_file_in(folder: Path) -> str:
    """A checkpoint's name in ``folder`` to suggest: its first ``.safetensors`` or ``.pt`` file, else the name a
    training run gives its model."""
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".pt", ".pth") and p.is_file())
    return found[0] if found else "model.safetensors"


def save_model(model: BDH, path: str | os.PathLike) -> Path:
    """Save atomically: ``.safetensors`` (project format, config in the metadata) or ``.pt`` (released format)."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    check_state(state, model.config, f"{path} (model to save)")
    if path.suffix == ".safetensors":
        metadata = {CONFIG_KEY: model.config.to_json(), FORMAT_KEY: FORMAT}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=metadata)
    elif path.suffix in (".pt", ".pth"):
        if model.config.damping:
            raise ValueError(f"save_model: cannot save a damped model as '{path}': the released .pt format is for "
                             "the released code, which has no damping; save it as .safetensors")
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    else:
        raise ValueError(f"save_model: path '{path}' must end in .safetensors (project format) or .pt (released)")
    return path


def describe(model: BDH) -> dict:
    """Sizes of a model, for ``bdh-graph info``."""
    c = model.config
    return {
        **c.to_dict(),
        "neurons_per_head": c.N,
        "neurons": c.n_neurons,
        "parameters": model.parameter_count(),
        "dtype": str(model.decoder.dtype).removeprefix("torch."),
        "bytes": sum(t.numel() * t.element_size() for t in model.state_dict().values()),
        "time_constants_tokens": [round(float(tau), 2) for tau in model.time_constants()] if c.damping else None,
    }
