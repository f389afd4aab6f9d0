"""``bdh-graph demo``: the main job on the bundled defaults.

The tensor model steps over a held-out passage of the default corpus; then every section in ``DEMO_SECTIONS``
(graphs, network, synapses, ...) runs on the same model and writes its figures into the output folder.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..text import decode, encode
from . import network_commands, structure_commands, synapse_commands
from .common import (add_device_argument, add_json_flag, add_model_argument, add_text_argument, model_from_args,
                     print_result, text_from_args)

# Sections added by later stages: functions ``section(model, out_dir: Path, args) -> dict``.
DEMO_SECTIONS: list = [structure_commands.degree_figure, network_commands.network_section,
                       network_commands.spike_section, synapse_commands.synapse_section]


def register(sub) -> None:
    p = sub.add_parser("demo", help="step the bundled model over a passage and write the figures",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(p)
    add_text_argument(p)
    p.add_argument("--out", type=Path, default=Path("bdh-demo"), help="folder for figures and recordings")
    p.add_argument("--predictions", type=int, default=5, help="next-byte predictions to print")
    add_device_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def next_byte_report(model, tokens: torch.Tensor, shown: int) -> dict:
    """Bits per byte of ``tokens`` under the recurrent form, and the top-3 predictions at ``shown`` positions."""
    logits = model.forward_recurrent(tokens.unsqueeze(0).to(model.decoder.device))[0].double().cpu()  # T, V
    nats = F.cross_entropy(logits[:-1], tokens[1:], reduction="sum").item()
    bits_per_byte = nats / math.log(2) / (len(tokens) - 1)
    probs = F.softmax(logits, dim=-1)
    positions = torch.linspace(8, len(tokens) - 2, steps=min(shown, len(tokens) - 9)).long().tolist() if len(tokens) > 10 else []
    predictions = []
    for t in positions:
        top = torch.topk(probs[t], 3)
        predictions.append({
            "context": decode(tokens[max(0, t - 24) : t + 1]),
            "actual": decode(tokens[t + 1 : t + 2]),
            "top3": [(decode(torch.tensor([int(i)])), round(float(p), 4)) for p, i in zip(top.values, top.indices)],
        })
    return {"tokens": len(tokens), "bits_per_byte": bits_per_byte, "predictions": predictions}


def cmd_demo(args) -> int:
    model = model_from_args(args)
    tokens = encode(text_from_args(args))
    report = next_byte_report(model, tokens, args.predictions)
    lines = [f"recurrent form over {report['tokens']} bytes: {report['bits_per_byte']:.3f} bits per byte"]
    for p in report["predictions"]:
        guesses = "  ".join(f"{c!r} {q:.2f}" for c, q in p["top3"])
        lines.append(f"  ...{p['context']!r} -> next {p['actual']!r}; model: {guesses}")
    args.out.mkdir(parents=True, exist_ok=True)
    for section in DEMO_SECTIONS:
        result = section(model, args.out, args)
        report[section.__name__] = result
        lines.append(result.get("summary", ""))
    print_result(args, report, "\n".join(lines))
    return 0
