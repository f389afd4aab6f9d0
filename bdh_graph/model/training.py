"""Training of the tensor model (parallel form): AdamW, deterministic given a seed, resumable.

Two ways to read the training text:

- random windows (``carry_state=False``): ``batch_size`` windows of ``block_size`` tokens at random places, each
  read from a zero synaptic state, as the released training code does;
- carried state (``carry_state=True``): ``batch_size`` *streams*. A stream starts at a random byte of a random
  document (documents drawn in proportion to their length), with a zero state at position 0, and reads on
  window by window; each window starts from the synaptic state ``rho`` the previous window of its stream left
  and continues its positions. Gradients stop at window boundaries, so a window costs the same whatever the
  length of its stream (1.28x a random window here: the read and write of the carried state, BENCHMARKS.md),
  yet the model learns to use and live with thousands of tokens of state. A stream ends at the end of
  its document (the last window padded, its padding ignored by the loss) or after ``max_stream_tokens``; the
  next window of that slot starts a new stream.

An output folder holds ``model.safetensors`` (the project format) and ``train_state.pt`` (optimizer, step,
random-number states, the streams and their synaptic state, and the loss history, read back with
``weights_only=True``). Both are written atomically after every evaluation, so an interrupted run resumes from
its last evaluation, bit for bit. With ``snapshot_every = K`` the model is also saved before the first step and
after every K-th, as ``snapshots/step-NNNNNN.safetensors`` (the series an emergence study reads); a resumed run
writes the snapshots it had not reached, equal to those of an uninterrupted run.

A damped model's damping parameters are not weight-decayed (decay would pull every gamma towards 1/2) and learn at
``DAMPING_LR_SCALE`` times the learning rate (Adam moves a parameter by at most about the learning rate a step: at
3e-4, with warm-up and cosine decay, 500 steps could change a time constant by a tenth at most; at 30x
by a factor of about 10), and a damped run may start (``init``) from an undamped checkpoint of the same sizes: its
damping starts at the initial spread of time constants.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..files import atomic_path
from .checkpoints import load_model, save_model
from .config import BDHConfig
from .evaluation import POSITION_BUCKETS, bits_per_byte_by_position
from .tensor import BDH, IGNORE_INDEX

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
SNAPSHOT_FOLDER = "snapshots"
DAMPING_LR_SCALE = 30.0


def snapshot_path(out_dir: str | Path, step: int) -> Path:
    """Where a run saves its model after ``step`` optimizer steps: ``OUT/snapshots/step-NNNNNN.safetensors``."""
    return Path(out_dir) / SNAPSHOT_FOLDER / f"step-{step:06d}.safetensors"


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
    carry_state: bool = False
    max_stream_tokens: int = 8192
    min_stream_tokens: int | None = None  # if set: each stream's length cap is drawn log-uniformly in [min, max]
    init: str | None = None  # start from this checkpoint's weights (same config) instead of a random init
    snapshot_every: int | None = None  # if set: save the model at step 0 and every this many steps

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "block_size", "eval_interval", "eval_batches", "max_stream_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.snapshot_every is not None and self.snapshot_every < 1:
            raise ValueError(f"TrainConfig.snapshot_every must be >= 1, got {self.snapshot_every}")
        if self.min_stream_tokens is not None and not 1 <= self.min_stream_tokens <= self.max_stream_tokens:
            raise ValueError(f"TrainConfig: need 1 <= min_stream_tokens <= max_stream_tokens, got "
                             f"{self.min_stream_tokens} and {self.max_stream_tokens}")
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
def held_out_loss(model: BDH, tokens: torch.Tensor | None, cfg: TrainConfig, batches=None) -> float:
    """Mean cross-entropy (nats per token) on ``cfg.eval_batches`` fixed windows of the held-out tokens, or fixed
    batches drawn from ``batches`` (a task's batches, as :func:`train` takes them)."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    was_training = model.training
    model.eval()
    device = model.decoder.device
    losses = []
    for _ in range(cfg.eval_batches):
        if batches is None:
            x, y = random_batch(tokens, cfg.batch_size, min(cfg.block_size, len(tokens) - 1), generator)
        else:
            x, y = batches(cfg.batch_size, generator)
        losses.append(model(x.to(device), y.to(device))[1].item())
    model.train(was_training)
    return sum(losses) / len(losses)


class Streams:
    """``batch_size`` streams over documents for carried-state training (see the module docstring).

    Each slot holds its document index, the offset of its next window and where its stream ends; ``next_window``
    returns the inputs and targets (B, T) of every slot and a mask of the slots that started a new stream (their
    synaptic state must be zeroed before the window).
    """

    def __init__(self, documents: list[torch.Tensor], cfg: TrainConfig, generator: torch.Generator):
        documents = [doc for doc in documents if len(doc) >= 2]
        if not documents:
            raise ValueError("carried-state training needs a document of at least 2 tokens")
        self.documents, self.cfg, self.generator = documents, cfg, generator
        self.weights = torch.tensor([float(len(doc) - 1) for doc in documents])
        B = cfg.batch_size
        self.doc = torch.zeros(B, dtype=torch.long)
        self.offset = torch.zeros(B, dtype=torch.long)
        self.end = torch.zeros(B, dtype=torch.long)  # 0: the slot needs a new stream

    def _start(self, b: int) -> None:
        doc = int(torch.multinomial(self.weights, 1, generator=self.generator))
        length = len(self.documents[doc])
        offset = int(torch.randint(length - 1, (1,), generator=self.generator))
        cap = self.cfg.max_stream_tokens
        if self.cfg.min_stream_tokens is not None:  # short and long streams alike: log-uniform caps
            low, high = math.log(self.cfg.min_stream_tokens), math.log(cap)
            cap = round(math.exp(low + (high - low) * float(torch.rand(1, generator=self.generator))))
        self.doc[b], self.offset[b] = doc, offset
        self.end[b] = min(length, offset + cap + 1)

    def next_window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = self.cfg.block_size
        inputs = torch.zeros(self.cfg.batch_size, T, dtype=torch.long)
        targets = torch.full((self.cfg.batch_size, T), IGNORE_INDEX, dtype=torch.long)
        fresh = self.end == 0
        for b in range(self.cfg.batch_size):
            if self.end[b] == 0:
                self._start(b)
            offset, end = int(self.offset[b]), int(self.end[b])
            window = self.documents[int(self.doc[b])][offset : min(end, offset + T + 1)]
            inputs[b, : len(window) - 1] = window[:-1]
            targets[b, : len(window) - 1] = window[1:]
            self.offset[b] = offset + T
            if offset + T + 1 >= end:
                self.end[b] = 0
        return inputs, targets, fresh

    def state_dict(self) -> dict:
        return {"doc": self.doc.clone(), "offset": self.offset.clone(), "end": self.end.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.doc, self.offset, self.end = state["doc"], state["offset"], state["end"]


def train(
    model_config: BDHConfig,
    train_documents: list[torch.Tensor] | torch.Tensor,
    held_out_tokens: torch.Tensor,
    out_dir: str | Path,
    cfg: TrainConfig = TrainConfig(),
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    batches=None,
) -> dict:
    """Train a model; returns the history ``{"step", "train_loss", "held_out_loss"[, "held_out_by_position"]}``.

    ``train_documents`` is a list of token tensors (one per document) or one tensor (one document). With
    ``cfg.carry_state`` the history also holds, at each evaluation, bits per byte of the held-out tokens by
    position bucket (``bits_per_byte_by_position``), when the held-out text is long enough.

    A task other than reading text gives ``batches`` instead of documents: a callable
    ``batches(batch_size, generator) -> (inputs, targets)`` (B, T) each, targets -100 where the loss skips a
    position (e.g. ``bdh_graph.model.recall_recipe.TrialBatches``); the held-out loss is then that of fixed
    batches drawn from it with another seed, and ``train_documents``, ``held_out_tokens`` are not read.
    """
    if batches is not None and cfg.carry_state:
        raise ValueError("train: a task's batches are read from a zero state; carry_state applies to documents")
    if isinstance(train_documents, torch.Tensor):
        train_documents = [train_documents]
    out_dir = Path(out_dir)
    if resume:
        _check_resumable(out_dir)  # before anything is created
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.snapshot_every is not None:
        (out_dir / SNAPSHOT_FOLDER).mkdir(exist_ok=True)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = BDH(model_config)
    if cfg.init is not None:
        _load_init(model, cfg.init)
    model = model.to(device)
    optimizer = torch.optim.AdamW(_parameter_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    history = {"step": [], "train_loss": [], "held_out_loss": []}
    streams = state = None
    if cfg.carry_state:
        streams = Streams(train_documents, cfg, generator)
        state = model.init_state(cfg.batch_size)
        state.position = torch.zeros(cfg.batch_size, dtype=torch.long, device=device)
        history["held_out_by_position"] = []
        by_position = len(held_out_tokens) >= POSITION_BUCKETS[-1]
    elif batches is None:
        train_tokens = torch.cat(train_documents)
    start = 0
    if resume:
        start, history = _restore(out_dir, model, optimizer, generator, streams, state, model_config, cfg, device)
    elif cfg.snapshot_every is not None:
        save_model(model, snapshot_path(out_dir, 0))
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="train")
    running = history["train_loss"][-1] if history["train_loss"] else None  # the smoothed loss goes on after a resume
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(step) * group["lr_scale"]
        if cfg.carry_state:
            x, y, fresh = streams.next_window()
            fresh = fresh.to(device)
            state.rho[:, fresh] = 0
            state.position[fresh] = 0
            _, loss = model(x.to(device), y.to(device), state=state)
            state.rho = state.rho.detach()  # gradients stop at the window boundary
        else:
            x, y = (batches(cfg.batch_size, generator) if batches is not None
                    else random_batch(train_tokens, cfg.batch_size, cfg.block_size, generator))
            _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        if cfg.snapshot_every is not None and (step + 1) % cfg.snapshot_every == 0:
            save_model(model, snapshot_path(out_dir, step + 1))
        if (step + 1) % cfg.eval_interval == 0 or step + 1 == cfg.steps:
            held_out = held_out_loss(model, held_out_tokens, cfg, batches)
            history["step"].append(step + 1)
            history["train_loss"].append(running)
            history["held_out_loss"].append(held_out)
            message = f"step {step + 1}: train loss {running:.4f}, held-out loss {held_out:.4f} nats/byte"
            if cfg.carry_state and by_position:
                bits = bits_per_byte_by_position(model, held_out_tokens)["bits_per_byte"]
                history["held_out_by_position"].append(bits)
                message += "; held-out bits/byte by position " + " ".join(f"{b:.3f}" for b in bits)
            bar.write(message, file=sys.stderr)  # stdout is the command's result (train --json)
            _checkpoint(out_dir, model, optimizer, generator, step + 1, history, model_config, cfg, streams, state)
    return history


def _load_init(model: BDH, path: str) -> None:
    """Start ``model`` from the weights of checkpoint ``path``, which must have its sizes; an undamped checkpoint may
    start a damped model (the damping keeps its initial values)."""
    start = load_model(path, dropout=model.config.dropout)
    if start.config.replace(damping=model.config.damping) != model.config or (start.config.damping
                                                                                and not model.config.damping):
        raise ValueError(f"--init checkpoint '{path}' has config {start.config.to_dict()}, "
                         f"the run asks for {model.config.to_dict()}")
    model.load_state_dict(start.with_damping(model.config.damping).state_dict())


def _parameter_groups(model: BDH, weight_decay: float) -> list[dict]:
    """AdamW's groups: every weight decayed at the scheduled rate, except the damping parameters (module docstring)."""
    damping = [] if model.attn.damping is None else [model.attn.damping]
    weights = [p for p in model.parameters() if not any(p is q for q in damping)]
    groups = [{"params": weights, "weight_decay": weight_decay, "lr_scale": 1.0}]
    return groups + ([{"params": damping, "weight_decay": 0.0, "lr_scale": DAMPING_LR_SCALE}] if damping else [])


def _check_resumable(out_dir: Path) -> None:
    if not (out_dir / STATE_FILE).is_file() or not (out_dir / MODEL_FILE).is_file():
        raise FileNotFoundError(f"cannot resume: '{out_dir}' has no {MODEL_FILE} and {STATE_FILE} "
                                "(start the run without --resume)")


def _checkpoint(out_dir, model, optimizer, generator, step, history, model_config, cfg, streams=None,
                stream_state=None) -> None:
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
    if streams is not None:
        state["streams"] = streams.state_dict()
        state["stream_rho"] = stream_state.rho.cpu()
        state["stream_position"] = stream_state.position.cpu()
    with atomic_path(out_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)


def _restore(out_dir, model, optimizer, generator, streams, stream_state, model_config, cfg, device):
    state_path = out_dir / STATE_FILE
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"training state '{state_path}': unreadable ({type(err).__name__}: {err})") from err
    if state.get("model_config") != model_config.to_dict():
        raise ValueError(f"training state '{state_path}': model config {state.get('model_config')} differs from "
                         f"{model_config.to_dict()}")
    saved_cfg = {k: v for k, v in state.get("train_config", {}).items() if k != "steps"}
    wanted = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "steps"}
    if saved_cfg != wanted:
        raise ValueError(f"training state '{state_path}': training settings {saved_cfg} differ from {wanted}")
    model.load_state_dict(load_model(out_dir / MODEL_FILE).state_dict())
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if streams is not None:
        streams.load_state_dict(state["streams"])
        stream_state.rho = state["stream_rho"].to(device)
        stream_state.position = state["stream_position"].to(device)
    return int(state["step"]), state["history"]
