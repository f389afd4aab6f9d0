"""``bdh-graph synapses``: concept synapses (find and test), a synapse's trace over a passage, sparsity."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..text.concepts import CONCEPTS, matched_sentences, read_sentences
from ..files import atomic_path
from ..interpretability.monosemantic import PRESYNAPTIC, ConceptSynapses, find_concept_synapses, trace_passage
from ..plots.synapses import plot_concept_test, plot_sparsity, plot_synapse_trace
from ..interpretability.sparsity import sparsity
from ..interpretability.synapse_state import DEFAULT_MAX_TOKENS, LEVELS, Synapse, check_synapse, synapse_trace
from ..text import encode
from .common import add_json_flag, add_model_argument, add_text_argument, model_from_args, print_result, text_from_args

DEMO_CONCEPT = "currency"
DEFAULT_PAIRS = 100  # 50 + 50 held out, the paper's test size


def register(sub) -> None:
    p = sub.add_parser("synapses", help="concept synapses, synapse traces and sparsity (SPEC.md 5)")
    ssub = p.add_subparsers(dest="synapse_command", required=True, metavar="SUBCOMMAND")

    f = ssub.add_parser("find", help="find synapses that separate concept from contrast sentences; test them "
                                     "on held-out sentences", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(f)
    f.add_argument("--concept", choices=sorted(CONCEPTS), default=DEMO_CONCEPT,
                   help="a generated concept (ignored with --concept-file)")
    f.add_argument("--sentences", type=int, default=DEFAULT_PAIRS,
                   help="generated concept sentences, and as many matched contrast sentences")
    f.add_argument("--concept-file", type=Path, default=None, help="your concept sentences, one per line (UTF-8)")
    f.add_argument("--contrast-file", type=Path, default=None, help="your contrast sentences, one per line (UTF-8)")
    f.add_argument("--level", choices=LEVELS, default="neuron",
                   help="neuron: the paper's synapses sigma[i, j]; hub: the tensor model's rho[c, j]")
    f.add_argument("--presynaptic", choices=PRESYNAPTIC, default=None,
                   help="presynaptic neurons screened at neuron level (default: model)")
    f.add_argument("--top-k", type=int, default=5, help="synapses selected and tested (Bonferroni over them)")
    f.add_argument("--candidates", type=int, default=1000, help="entries passed from the screen to exact U")
    f.add_argument("--test-fraction", type=float, default=0.5, help="share of each set held out for the test")
    f.add_argument("--alpha", type=float, default=0.01, help="significance level after Bonferroni")
    f.add_argument("--layers", type=int, nargs="+", default=None, help="layers to screen (default: all)")
    f.add_argument("--any-direction", action="store_true",
                   help="also synapses that the contrast sentences push down (default: only synapses that grow "
                        "with the concept, mean after concept > |mean after contrast| on the selection sentences)")
    f.add_argument("--seed", type=int, default=0, help="seed of the generated sentences and of the split")
    f.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="longest sentence accepted (bytes)")
    f.add_argument("--out", type=Path, default=None, help="folder for the table (JSON) and the figures")
    add_json_flag(f)
    f.set_defaults(func=cmd_find)

    t = ssub.add_parser("trace", help="a synapse's state token by token over a passage (figure)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(t)
    t.add_argument("--synapse", required=True, metavar="LAYER:PRE:POST",
                   help="layer, presynaptic index (neuron < n, input neuron n + byte, or hub) and x-neuron")
    t.add_argument("--level", choices=LEVELS, default="neuron")
    add_text_argument(t, default_bytes=DEFAULT_MAX_TOKENS)
    t.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="longest passage accepted (bytes)")
    t.add_argument("--out", type=Path, default=Path("synapse_trace.png"), help="figure file")
    add_json_flag(t)
    t.set_defaults(func=cmd_trace)

    s = ssub.add_parser("sparsity", help="fraction of x and y active per layer, per-neuron selectivity",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(s)
    add_text_argument(s, default_bytes=4096)
    s.add_argument("--out", type=Path, default=None, help="figure file")
    add_json_flag(s)
    s.set_defaults(func=cmd_sparsity)


def parse_synapse(text: str, level: str) -> Synapse:
    parts = text.split(":")
    try:
        layer, pre, post = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--synapse must be LAYER:PRE:POST (three integers), got {text!r}") from None
    return Synapse(layer, pre, post, level)


def sentences_from_args(args) -> tuple[list[str], list[str], str]:
    if (args.concept_file is None) != (args.contrast_file is None):
        raise ValueError("give both --concept-file and --contrast-file, or neither (generated sentences)")
    if args.concept_file is not None:
        return read_sentences(args.concept_file), read_sentences(args.contrast_file), str(args.concept_file)
    concept, contrast = matched_sentences(args.concept, args.sentences, args.seed)
    return concept, contrast, args.concept


def best_synapse(found: ConceptSynapses):
    """The reported synapse with the smallest held-out p-value."""
    return min(found.synapses, key=lambda s: s.test.p)


def write_trace_figure(model, found: ConceptSynapses, path: Path, label: str) -> Path:
    """The best synapse's state token by token over held-out sentences, concept sentences shaded."""
    best = best_synapse(found)
    text, spans = trace_passage(found.split)
    values = synapse_trace(model, text, best.synapse)
    title = (f"{label}: {best.synapse.describe(model.config)}\nheld-out U = {best.test.U:.0f} of "
             f"{best.test.n_concept * best.test.n_contrast}, p = {best.test.p:.2g}, rank-biserial "
             f"{best.test.rank_biserial:.2f}{' (significant)' if best.significant else ' (not significant)'}; "
             "shaded: concept sentences")
    return plot_synapse_trace(values, encode(text), path, title, spans)


def write_test_figure(model, found: ConceptSynapses, path: Path) -> Path:
    """The best synapse's values after each held-out concept and contrast sentence."""
    best = best_synapse(found)
    return plot_concept_test(best.test_concept_values, best.test_contrast_values, path,
                             best.synapse.describe(model.config),
                             f"U = {best.test.U:.0f}, p = {best.test.p:.2g}, r = {best.test.rank_biserial:.2f}")


def cmd_find(args) -> int:
    model = model_from_args(args)
    concept, contrast, label = sentences_from_args(args)
    found = find_concept_synapses(model, concept, contrast, args.level, args.presynaptic, args.top_k, args.candidates,
                                  args.test_fraction, args.alpha, args.seed, args.max_tokens, args.layers,
                                  strengthening=not args.any_direction)
    data = {"concept": label, **found.to_dict()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        if found.synapses:
            data["figures"] = [str(write_trace_figure(model, found, args.out / "concept_synapse.png", label)),
                               str(write_test_figure(model, found, args.out / "concept_synapse_test.png"))]
        with atomic_path(args.out / "concept_synapses.json") as tmp:
            tmp.write_text(json.dumps({**data, "split": found.split.to_dict()}, indent=2))
    print_result(args, data, f"{label}\n{found.table(model.config)}\n{found.summary(model.config)}")
    return 0


def cmd_trace(args) -> int:
    model = model_from_args(args)
    synapse = check_synapse(parse_synapse(args.synapse, args.level), model.config)
    text = text_from_args(args, DEFAULT_MAX_TOKENS)
    values = synapse_trace(model, text, synapse, args.max_tokens)
    path = plot_synapse_trace(values, encode(text), args.out, synapse.describe(model.config))
    data = {**synapse.to_dict(), "tokens": len(values), "final": float(values[-1]), "max": float(values.max()),
            "min": float(values.min()), "figure": str(path)}
    print_result(args, data, f"{synapse.describe(model.config)} over {len(values)} tokens: final {values[-1]:.4g}, "
                             f"range [{values.min():.4g}, {values.max():.4g}]; figure {path}")
    return 0


def cmd_sparsity(args) -> int:
    model = model_from_args(args)
    stats = sparsity(model, text_from_args(args, 4096))
    data = stats.to_dict()
    if args.out is not None:
        data["figure"] = str(plot_sparsity(stats, args.out))
    print_result(args, data, stats.summary() + (f"; figure {data['figure']}" if args.out is not None else ""))
    return 0


def synapse_section(model, out_dir: Path, args) -> dict:
    """Demo section: the currency synapses of the model, tested on 50 vs 50 held-out sentences, one figure."""
    concept, contrast = matched_sentences(DEMO_CONCEPT, DEFAULT_PAIRS, seed=0)
    found = find_concept_synapses(model, concept, contrast)
    figure = None
    if found.synapses:
        figure = str(write_trace_figure(model, found, out_dir / "concept_synapse.png", DEMO_CONCEPT))
    return {**found.to_dict(), "figure": figure,
            "summary": f"concept synapses ({DEMO_CONCEPT}): {found.summary(model.config)}"
                       + (f"; figure {figure}" if figure else "")}
