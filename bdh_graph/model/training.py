"""Training of the tensor model (parallel form): AdamW, deterministic given a seed, resumable.

An output folder holds ``model.safetensors`` (the project format) and ``train_state.pt`` (optimizer, step,
random-number states and loss history, read back with ``weights_only=True``). Both are written atomically
after every evaluation, so an interrupted run resumes from its last evaluation.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import load_model, save_model
from .config import BDHConfig
from ..files import atomic_path
from .tensor import BDH

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The learning rate warms up linearly, then decays by a cosine to ``min_lr``."""

    steps: int = 800
    batch_size: int = 8
    block_size: int = 256
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 200
    eval_batches: int = 20
    seed: int = 1337

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "block_size", "eval_interval", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig: need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def random_batch(tokens: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator):
    """``batch_size`` random windows of ``block_size + 1`` tokens: inputs and next-token targets, (B, T) each."""
    if len(tokens) <= block_size:
        raise ValueError(f"text has {len(tokens)} tokens, need more than block_size={block_size}")
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    windows = torch.stack([tokens[s : s + block_size + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def held_out_loss(model: BDH, tokens: torch.Tensor, cfg: TrainConfig) -> float:
    """Mean cross-entropy (nats per byte) on ``cfg.eval_batches`` fixed windows of the held-out tokens."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    was_training = model.training
    model.eval()
    device = model.decoder.device
    losses = []
    for _ in range(cfg.eval_batches):
        x, y = random_batch(tokens, cfg.batch_size, min(cfg.block_size, len(tokens) - 1), generator)
        losses.append(model(x.to(device), y.to(device))[1].item())
    model.train(was_training)
    return sum(losses) / len(losses)


def train(
    model_config: BDHConfig,
    train_tokens: torch.Tensor,
    held_out_tokens: torch.Tensor,
    out_dir: str | Path,
    cfg: TrainConfig = TrainConfig(),
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train a model; returns the history ``{"step": [...], "train_loss": [...], "held_out_loss": [...]}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = BDH(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    history = {"step": [], "train_loss": [], "held_out_loss": []}
    start = 0
    if resume:
        start, history = _restore(out_dir, model, optimizer, generator, model_config, cfg, device)
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="train")
    running = None
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(step)
        x, y = random_batch(train_tokens, cfg.batch_size, cfg.block_size, generator)
        _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        if (step + 1) % cfg.eval_interval == 0 or step + 1 == cfg.steps:
            held_out = held_out_loss(model, held_out_tokens, cfg)
            history["step"].append(step + 1)
            history["train_loss"].append(running)
            history["held_out_loss"].append(held_out)
            bar.write(f"step {step + 1}: train loss {running:.4f}, held-out loss {held_out:.4f} nats/byte")
            _checkpoint(out_dir, model, optimizer, generator, step + 1, history, model_config, cfg)
    return history


def _checkpoint(out_dir, model, optimizer, generator, step, history, model_config, cfg) -> None:
    save_model(model, out_dir / MODEL_FILE)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "model_config": model_config.to_dict(),
        "train_config": dataclasses.asdict(cfg),
    }
    with atomic_path(out_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)


def _restore(out_dir, model, optimizer, generator, model_config, cfg, device):
    state_path = out_dir / STATE_FILE
    if not state_path.is_file() or not (out_dir / MODEL_FILE).is_file():
        raise FileNotFoundError(f"cannot resume: '{out_dir}' has no {MODEL_FILE} and {STATE_FILE}")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"training state '{state_path}': unreadable ({type(err).__name__}: {err})") from err
    if state.get("model_config") != model_config.to_dict():
        raise ValueError(
            f"training state '{state_path}': model config {state.get('model_config')} differs from {model_config.to_dict()}"
        )
    saved_cfg = {k: v for k, v in state.get("train_config", {}).items() if k != "steps"}
    wanted = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "steps"}
    if saved_cfg != wanted:
        raise ValueError(f"training state '{state_path}': training settings {saved_cfg} differ from {wanted}")
    model.load_state_dict(load_model(out_dir / MODEL_FILE).state_dict())
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), state["history"]
