"""Commands on the tensor model: ``train``, ``info``, ``generate``, ``demo``."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..model.checkpoints import describe
from ..text.concepts import concept_corpus
from ..model.config import BDHConfig
from ..text import decode, default_corpus, encode, read_text, split_held_out
from ..model.training import MODEL_FILE, TrainConfig, train
from . import demo
from .common import add_device_argument, add_json_flag, add_model_argument, model_from_args, print_result

# The bundled model's recipe: these are the defaults of ``bdh-graph train``.
BUNDLED_CONFIG = BDHConfig(n_layer=4, n_embd=128, n_head=4, mlp_internal_dim_multiplier=32)
BUNDLED_CONCEPT_SENTENCES = 1200


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (defaults: the bundled model's recipe)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder")
    p.add_argument("--text", type=Path, default=None, help="UTF-8 training text (default: the pydoc corpus)")
    p.add_argument("--concept-sentences", type=int, default=BUNDLED_CONCEPT_SENTENCES,
                   help="generated concept/contrast sentences mixed into the training text (0: none)")
    for name in ("n_layer", "n_embd", "n_head", "mlp_internal_dim_multiplier"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(BUNDLED_CONFIG, name))
    p.add_argument("--dropout", type=float, default=BUNDLED_CONFIG.dropout)
    p.add_argument("--no-layer-norm", action="store_true", help="train the Normfree variant")
    defaults = TrainConfig()
    for name in ("steps", "batch_size", "block_size", "warmup_steps", "eval_interval", "eval_batches", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    add_device_argument(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_json_flag(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("info", help="sizes, parameter count and neuron count of a checkpoint")
    add_model_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="sample text, stepping the recurrent form")
    add_model_argument(p)
    p.add_argument("--prompt", default="The ", help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)

    demo.register(sub)


def cmd_train(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = BDHConfig(
        n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
        mlp_internal_dim_multiplier=args.mlp_internal_dim_multiplier, dropout=args.dropout,
        layer_norm=not args.no_layer_norm,
    )
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, block_size=args.block_size, lr=args.lr, min_lr=args.min_lr,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        eval_interval=args.eval_interval, eval_batches=args.eval_batches, seed=args.seed,
    )
    text = read_text(args.text) if args.text is not None else default_corpus()
    train_tokens, held_out = split_held_out(encode(text))
    if args.concept_sentences < 0:
        raise ValueError(f"--concept-sentences must be >= 0, got {args.concept_sentences}")
    if args.concept_sentences:
        train_tokens = torch.cat([train_tokens, encode(concept_corpus(args.concept_sentences, seed=args.seed))])
    history = train(model_config, train_tokens, held_out, args.out, cfg, resume=args.resume, device=args.device)
    result = {"model": str(args.out / MODEL_FILE), "train_tokens": len(train_tokens),
              "held_out_tokens": len(held_out), **history}
    print_result(args, result, f"saved {args.out / MODEL_FILE}; held-out loss {history['held_out_loss'][-1]:.4f} "
                               f"nats/byte ({history['held_out_loss'][-1] / 0.6931471805599453:.4f} bits/byte)")
    return 0


def cmd_info(args) -> int:
    info = describe(model_from_args(args))
    info["checkpoint"] = args.checkpoint or "bundled"
    text = "\n".join(f"{k:>28}: {v}" for k, v in info.items())
    print_result(args, info, text)
    return 0


def cmd_generate(args) -> int:
    model = model_from_args(args)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    idx = encode(args.prompt).unsqueeze(0).to(args.device)
    out = model.generate(idx, args.max_new_tokens, args.temperature, args.top_k, generator=generator)
    text = decode(out[0])
    print_result(args, {"prompt": args.prompt, "text": text, "seed": args.seed}, text)
    return 0

