"""The bundled recall model's recipe: a small BDH trained on the paired-associate task (issue 24).

``bdh_graph/data/bdh-recall.safetensors`` is ``RECALL_CONFIG`` trained with ``RECALL_TRAINING`` on
:class:`TrialBatches` of ``RECALL_TASK`` (``bdh-graph recall-train --out runs/recall``, all defaults). The sizes
ladder of ``bdh-graph recall-sizes`` trains smaller models (:func:`recall_config` of fewer neurons) the same way.
In a script::

    train_recall(RECALL_CONFIG, "runs/recall")
"""
from __future__ import annotations

import numpy as np
import torch

from pathlib import Path

from ..text.paired_associates import PairedAssociates, filler_text, make_trial
from .config import BDHConfig
from .tensor import IGNORE_INDEX
from .training import TrainConfig, train

RECALL_MODEL = Path(__file__).parent.parent / "data" / "bdh-recall.safetensors"
RECALL_TASK = PairedAssociates(32)  # 32 keys x 32 partners: vocab_size 1344, chance 1/32
RECALL_NEURONS = 512
SIZES = (64, 128, 256, RECALL_NEURONS)  # the ladder of bdh-graph recall-sizes
MAX_DISTRACTORS = 32  # a training batch studies 1..K pairs and reads 0..32 bytes of text before the cues
RECALL_TRAINING = TrainConfig(steps=800, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=40, eval_interval=200,
                              eval_batches=4, seed=24)


def recall_config(neurons: int = RECALL_NEURONS, task: PairedAssociates = RECALL_TASK) -> BDHConfig:
    """One layer, d = 64, 4 heads of ``neurons / 4`` neurons each, the task's vocabulary, no dropout."""
    if isinstance(neurons, bool) or not isinstance(neurons, int) or neurons < 64 or neurons % 64:
        raise ValueError(f"neurons: a multiple of 64 (d = 64, 4 heads), got {neurons!r}")
    return BDHConfig(n_layer=1, n_embd=64, n_head=4, mlp_internal_dim_multiplier=neurons // 64,
                     vocab_size=task.vocab_size, dropout=0.0)


RECALL_CONFIG = recall_config()


class TrialBatches:
    """Training batches of the task: each batch one P (uniform in 1..``max_pairs``, by default the task's K) and
    one D (uniform in 0..``max_distractors``) for all its trials, distractors from the default corpus's training
    part; the targets are the answers at the cues, every other target ignored (-100). ``train`` calls
    ``batches(B, generator)``."""

    def __init__(self, task: PairedAssociates = RECALL_TASK, max_pairs: int | None = None,
                 max_distractors: int = MAX_DISTRACTORS):
        max_pairs = task.stimuli if max_pairs is None else max_pairs
        self.task, self.max_pairs = task, task.check_pairs(max_pairs, "max_pairs")
        self.max_distractors = max_distractors
        self.filler = np.asarray(filler_text(held_out=False))

    def __call__(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        pairs = int(rng.integers(1, self.max_pairs + 1))
        distractors = int(rng.integers(0, self.max_distractors + 1))
        trials = [make_trial(self.task, pairs, distractors, rng, self.filler) for _ in range(batch_size)]
        tokens = torch.as_tensor(np.stack([t.tokens for t in trials]))
        targets = torch.full_like(tokens, IGNORE_INDEX)
        cues = torch.as_tensor(trials[0].cue_positions)
        targets[:, cues] = tokens[:, cues + 1]
        return tokens[:, :-1], targets[:, :-1]  # the last answer is a target, never an input


def train_recall(config: BDHConfig, out_dir, cfg: TrainConfig = RECALL_TRAINING, task: PairedAssociates = RECALL_TASK,
                 progress: bool = True) -> dict:
    """Train ``config`` on the task into ``out_dir`` (``model.safetensors``); returns the loss history."""
    return train(config, None, None, out_dir, cfg, progress=progress, batches=TrialBatches(task))


__all__ = ["MAX_DISTRACTORS", "RECALL_CONFIG", "RECALL_MODEL", "RECALL_NEURONS", "RECALL_TASK",
           "RECALL_TRAINING", "SIZES", "TrialBatches", "recall_config", "train_recall"]
