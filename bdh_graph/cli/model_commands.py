"""Commands on the tensor model: ``train``, ``info``, ``generate``."""
from __future__ import annotations

import argparse
import math

import torch

from ..graphs import PAPER_EDGES_PER_NEURON
from ..graphs.scale import model_scales
from ..model.checkpoints import describe
from ..model.config import BDHConfig
from ..model.recipe import BUNDLED_CONCEPT_SENTENCES, BUNDLED_CONFIG, BUNDLED_TRAINING, training_documents
from ..model.training import MODEL_FILE, TrainConfig, train
from ..text import decode, encode, read_text
from .common import (above, add_device_argument, add_json_flag, add_model_argument, at_least, between, checked,
                     count, input_file, model_from_args, output_folder, positive_number, print_result)

# ``train``'s options: the model's sizes and the training settings, defaults from ``bdh_graph.model.recipe``.
MODEL_OPTIONS = {
    "n_layer": "layers L",
    "n_embd": "hub dimension d (the residual stream)",
    "n_head": "heads h",
    "mlp_internal_dim_multiplier": "neurons per head: N = this x d / h",
}
TRAIN_OPTIONS = {
    "steps": (count(1), "optimizer steps"),
    "batch_size": (count(1), "windows of text per step"),
    "block_size": (count(1), "bytes per window, the context the model learns"),
    "warmup_steps": (count(0), "steps of linear learning-rate warm-up"),
    "eval_interval": (count(1), "measure the held-out loss and save the model every this many steps"),
    "eval_batches": (count(1), "batches per held-out measurement"),
    "seed": (count(0), "seed of the initial weights, the batches and the concept sentences"),
    "lr": (positive_number, "peak learning rate (AdamW)"),
    "min_lr": (positive_number, "learning rate at the end of the cosine decay (at most --lr)"),
    "weight_decay": (checked(float, at_least(0)), "AdamW weight decay"),
    "grad_clip": (positive_number, "largest gradient norm; larger gradients are scaled down to it"),
    "max_stream_tokens": (count(1), "with --carry-state: the longest stream, in tokens, before its state is reset"),
    "min_stream_tokens": (count(1), "with --carry-state: draw each stream's length cap log-uniformly from here "
                                    "to --max-stream-tokens (default: every stream may reach the maximum)"),
    "snapshot_every": (count(1), "save the model at step 0 and every this many steps as "
                                 "OUT/snapshots/step-NNNNNN.safetensors (the series `bdh-graph emergence` reads)"),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (defaults: the bundled model's recipe)")
    p.add_argument("--out", type=output_folder, default="runs/train",
                   help=f"folder for {MODEL_FILE} and the training state")
    p.add_argument("--text", type=input_file, default=None, help="UTF-8 training text (default: the pydoc corpus)")
    p.add_argument("--concept-sentences", type=count(0), default=BUNDLED_CONCEPT_SENTENCES,
                   help="generated concept/contrast sentences mixed into the training text (0: none)")
    for name, text in MODEL_OPTIONS.items():
        p.add_argument(flag(name), type=count(1), default=getattr(BUNDLED_CONFIG, name), help=text)
    p.add_argument("--dropout", type=checked(float, between(0, 1)), default=BUNDLED_CONFIG.dropout,
                   help="dropout probability while training")
    p.add_argument("--no-layer-norm", action="store_true", help="train the Normfree variant")
    p.add_argument("--damping", action=argparse.BooleanOptionalAction, default=BUNDLED_CONFIG.damping,
                   help="give each head a learned damping factor gamma in (0, 1): the synaptic state decays by gamma "
                        "before every read (time constants start log-spaced from 32 to 2048 tokens)")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        p.add_argument(flag(name), type=kind, default=getattr(BUNDLED_TRAINING, name), help=text)
    p.add_argument("--carry-state", action=argparse.BooleanOptionalAction, default=BUNDLED_TRAINING.carry_state,
                   help="read documents as streams: each window starts from the synaptic state the previous "
                        "window of its stream left (positions continue, gradients stop at the boundary)")
    p.add_argument("--init", type=input_file, default=BUNDLED_TRAINING.init,
                   help="start from this checkpoint's weights (same sizes) instead of a random initialisation")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    add_device_argument(p)
    p.add_argument("--threads", type=count(1), default=None, help="torch CPU threads (default: torch's choice)")
    add_json_flag(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("info", help="sizes, parameter count and neuron count of a checkpoint, and the scale of the "
                                    "pruning threshold beta: each graph's largest |G| and the beta at the paper's "
                                    "edge density")
    add_model_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="sample text, stepping the recurrent form")
    add_model_argument(p)
    p.add_argument("--prompt", type=checked(str, _not_empty), default="The ", help="text to continue")
    p.add_argument("--max-new-tokens", type=count(0), default=200, help="bytes to sample")
    p.add_argument("--temperature", type=checked(float, above(0)), default=0.8,
                   help="divides the logits before sampling; lower is more conservative")
    p.add_argument("--top-k", type=count(1), default=None,
                   help="sample among the K most likely bytes only (default: among all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    add_device_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)


def _not_empty(text: str) -> None:
    if not text:
        raise ValueError("must not be empty")


def train_config(args) -> TrainConfig:
    """The training settings ``train``'s options give."""
    return TrainConfig(**{name: getattr(args, name) for name in TRAIN_OPTIONS}, carry_state=args.carry_state,
                       init=None if args.init is None else str(args.init))


def cmd_train(args) -> int:
    if args.min_lr > args.lr:
        raise ValueError(f"--min-lr must be <= --lr, got --min-lr {args.min_lr:g} and --lr {args.lr:g}")
    if args.min_stream_tokens is not None and args.min_stream_tokens > args.max_stream_tokens:
        raise ValueError(f"--min-stream-tokens must be <= --max-stream-tokens, got {args.min_stream_tokens} and "
                         f"{args.max_stream_tokens}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = BDHConfig(
        n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
        mlp_internal_dim_multiplier=args.mlp_internal_dim_multiplier, dropout=args.dropout,
        layer_norm=not args.no_layer_norm, damping=args.damping,
    )
    cfg = train_config(args)
    text = read_text(args.text) if args.text is not None else None
    documents, held_out = training_documents(text, args.concept_sentences, seed=args.seed)
    history = train(model_config, documents, held_out, args.out, cfg, resume=args.resume, device=args.device)
    loss = history["held_out_loss"][-1]
    result = {"model": str(args.out / MODEL_FILE), "train_tokens": sum(len(doc) for doc in documents),
              "held_out_tokens": len(held_out), **history}
    print_result(args, result, f"saved {args.out / MODEL_FILE}; held-out loss {loss:.4f} nats/byte "
                               f"({loss / math.log(2):.4f} bits/byte)")
    return 0


def cmd_info(args) -> int:
    model = model_from_args(args)
    info = describe(model)
    info["checkpoint"] = args.checkpoint or "bundled"
    text = "\n".join(f"{k:>28}: {v}" for k, v in info.items())
    scales = model_scales(model)
    info["beta_scale"] = {graph: {"network": s["network"].to_dict(), "heads": [h.to_dict() for h in s["heads"]]}
                          for graph, s in scales.items()}
    print_result(args, info, f"{text}\n{format_scales(scales)}")
    return 0


def format_scales(scales: dict) -> str:
    """The scale of beta (``graphs.scale.model_scales``) as a table, each row with the commands it is for."""
    lines = [f"the scale of beta (a threshold keeps the edges with |G| >= beta): each graph's largest |G| and the beta "
             f"at the paper's edge density, {PAPER_EDGES_PER_NEURON:.3f} excitatory edges per postsynaptic neuron",
             f"  {'graph':<36} {'largest |G|':>11} {'paper beta':>11}  used by"]
    for s in scales.values():
        rows = [(s["network"], "validate, step, memory --beta")] + [(h, "analyze --beta") for h in s["heads"]]
        lines += [f"  {scale.graph:<36} {scale.largest:>11.4g} {scale.paper_beta:>11.4g}  {used}"
                  for scale, used in rows]
    return "\n".join(lines)


def cmd_generate(args) -> int:
    model = model_from_args(args)
    if args.top_k is not None and args.top_k > model.config.vocab_size:
        raise ValueError(f"--top-k must be <= the vocabulary size {model.config.vocab_size}, got {args.top_k}")
    generator = torch.Generator(args.device).manual_seed(args.seed)
    idx = encode(args.prompt).unsqueeze(0).to(args.device)
    out = model.generate(idx, args.max_new_tokens, args.temperature, args.top_k, generator=generator)
    text = decode(out[0])
    print_result(args, {"prompt": args.prompt, "text": text, "seed": args.seed}, text)
    return 0
