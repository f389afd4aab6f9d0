"""``bdh-graph synapses``: concept synapses (find and test), a synapse's trace over a passage, sparsity."""
from __future__ import annotations

import json

from ..distributed import engine
from ..files import atomic_path
from ..interpretability.monosemantic import PAPER_SENTENCES, PRESYNAPTIC, find_concept_synapses
from ..interpretability.sparsity import sparsity
from ..interpretability.synapse_state import DEFAULT_MAX_TOKENS, synapse_trace
from ..network.address import LEVELS, SYNTAX, parse_synapse
from ..plots.synapses import plot_concept_synapse, plot_concept_synapse_test, plot_sparsity, plot_synapse_trace
from ..text import encode
from ..text.concepts import CONCEPTS, matched_sentences, read_sentences
from .common import (add_json_flag, add_model_argument, add_scheduler_argument, add_text_argument, between, checked,
                     count, input_file, model_from_args, output_file, output_folder, print_result, text_from_args)

DEFAULT_CONCEPT = "currency"  # also the demo's


def register(sub) -> None:
    p = sub.add_parser("synapses", help="concept synapses, synapse traces and sparsity (the paper's section 5)")
    ssub = p.add_subparsers(dest="synapse_command", required=True, metavar="SUBCOMMAND")

    f = ssub.add_parser("find", help="find synapses that separate concept from contrast sentences; test them "
                                     "on held-out sentences")
    add_model_argument(f)
    f.add_argument("--concept", choices=sorted(CONCEPTS), default=DEFAULT_CONCEPT,
                   help="a generated concept (ignored with --concept-file)")
    f.add_argument("--sentences", type=count(4), default=PAPER_SENTENCES,
                   help="generated concept sentences, and as many matched contrast sentences")
    f.add_argument("--concept-file", type=input_file, default=None,
                   help="your concept sentences, one per line (UTF-8; with --contrast-file)")
    f.add_argument("--contrast-file", type=input_file, default=None,
                   help="your contrast sentences, one per line (UTF-8; with --concept-file)")
    f.add_argument("--level", choices=LEVELS, default="neuron",
                   help="neuron: the paper's synapses sigma[i, j]; hub: the tensor model's rho[c, j]")
    f.add_argument("--presynaptic", choices=PRESYNAPTIC, default=None,
                   help="presynaptic neurons screened at neuron level (default: model)")
    f.add_argument("--top-k", type=count(1), default=5, help="synapses selected and tested (Bonferroni over them)")
    f.add_argument("--candidates", type=count(1), default=1000, help="entries passed from the screen to exact U")
    f.add_argument("--test-fraction", type=checked(float, between(0, 1, include_low=False)), default=0.5,
                   help="share of each set held out for the test")
    f.add_argument("--alpha", type=checked(float, between(0, 1, include_low=False)), default=0.01,
                   help="significance level after Bonferroni")
    f.add_argument("--layers", type=count(0), nargs="+", default=None, help="layers to screen (default: all)")
    f.add_argument("--any-direction", action="store_true",
                   help="also synapses that the contrast sentences push down (default: only synapses that grow "
                        "with the concept, mean after concept > |mean after contrast| on the selection sentences)")
    f.add_argument("--seed", type=int, default=0, help="seed of the generated sentences and of the split")
    f.add_argument("--max-tokens", type=count(1), default=DEFAULT_MAX_TOKENS, help="longest sentence accepted (bytes)")
    f.add_argument("--out", type=output_folder, default=None,
                   help="folder for the table (concept_synapses.json) and the figures (default: print only)")
    add_scheduler_argument(f, "the sentences (a batch of 16 a task) and the layers of the screen")
    add_json_flag(f)
    f.set_defaults(func=cmd_find)

    t = ssub.add_parser("trace", help="a synapse's state token by token over a passage (figure)")
    add_model_argument(t)
    t.add_argument("--synapse", required=True, metavar="ADDRESS",
                   help=f"the synapse: {SYNTAX}; at --level hub PRE is a hub")
    t.add_argument("--level", choices=LEVELS, default="neuron",
                   help="neuron: the paper's synapses sigma; hub: the tensor model's rho")
    add_text_argument(t, default_bytes=DEFAULT_MAX_TOKENS)
    t.add_argument("--max-tokens", type=count(1), default=DEFAULT_MAX_TOKENS, help="longest passage accepted (bytes)")
    t.add_argument("--out", type=output_file, default="synapse_trace.png", help="figure file")
    add_json_flag(t)
    t.set_defaults(func=cmd_trace)

    s = ssub.add_parser("sparsity", help="fraction of x and y active per layer, per-neuron selectivity")
    add_model_argument(s)
    add_text_argument(s, default_bytes=4096)
    s.add_argument("--out", type=output_file, default=None, help="figure file (default: no figure)")
    add_json_flag(s)
    s.set_defaults(func=cmd_sparsity)


def sentences_from_args(args) -> tuple[list[str], list[str], str]:
    if (args.concept_file is None) != (args.contrast_file is None):
        raise ValueError("give both --concept-file and --contrast-file, or neither (generated sentences)")
    if args.concept_file is not None:
        return read_sentences(args.concept_file), read_sentences(args.contrast_file), str(args.concept_file)
    try:
        concept, contrast = matched_sentences(args.concept, args.sentences, args.seed)
    except ValueError as err:
        raise ValueError(f"--sentences: {err}") from None
    return concept, contrast, args.concept


def cmd_find(args) -> int:
    if args.top_k > args.candidates:
        raise ValueError(f"--top-k must be <= --candidates, got --top-k {args.top_k} and --candidates "
                         f"{args.candidates}")
    model = model_from_args(args)
    L = model.config.n_layer
    if args.layers is not None and max(args.layers) >= L:
        raise ValueError(f"--layers: the model has layers 0..{L - 1}, got {args.layers}")
    concept, contrast, label = sentences_from_args(args)
    with engine(args.scheduler) as eng:
        found = find_concept_synapses(model, concept, contrast, args.level, args.presynaptic, args.top_k,
                                      args.candidates, args.test_fraction, args.alpha, args.seed, args.max_tokens,
                                      args.layers, strengthening=not args.any_direction, progress=True,
                                      scheduler=eng)
    data = {"concept": label, **found.to_dict()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        if found.synapses:
            data["figures"] = [str(plot_concept_synapse(model, found, args.out / "concept_synapse.png", label)),
                               str(plot_concept_synapse_test(found, model.config,
                                                             args.out / "concept_synapse_test.png", label))]
        with atomic_path(args.out / "concept_synapses.json") as tmp:
            tmp.write_text(json.dumps({**data, "split": found.split.to_dict()}, indent=2))
    print_result(args, data, f"{label}\n{found.table(model.config)}\n{found.summary(model.config)}")
    return 0


def cmd_trace(args) -> int:
    model = model_from_args(args)
    synapse = parse_synapse(args.synapse, model.config, args.level, name="--synapse")
    text = text_from_args(args, DEFAULT_MAX_TOKENS)
    tokens = encode(text)
    if len(tokens) > args.max_tokens:
        raise ValueError(f"--text: the passage is {len(tokens)} bytes long, longer than --max-tokens "
                         f"{args.max_tokens}; give a shorter text or a larger --max-tokens")
    values = synapse_trace(model, text, synapse, args.max_tokens)
    path = plot_synapse_trace(values, tokens, args.out, synapse.describe(model.config))
    data = {"address": synapse.address(model.config), **synapse.to_dict(), "tokens": len(values),
            "final": float(values[-1]), "max": float(values.max()), "min": float(values.min()), "figure": str(path)}
    print_result(args, data, f"{synapse.describe(model.config)} over {len(values)} tokens: final {values[-1]:.4g}, "
                             f"range [{values.min():.4g}, {values.max():.4g}]; figure {path}")
    return 0


def cmd_sparsity(args) -> int:
    model = model_from_args(args)
    stats = sparsity(model, text_from_args(args, 4096), progress=True)
    data = stats.to_dict()
    if args.out is not None:
        data["figure"] = str(plot_sparsity(stats, args.out))
    print_result(args, data, stats.summary() + (f"; figure {data['figure']}" if args.out is not None else ""))
    return 0
