"""The paper's monosemantic-synapse experiment (its section 5; docs/model.md), for any checkpoint.

For each concept (default: all generated ones) the model reads 100 distinct concept sentences and 100 matched
contrast sentences (same templates, the concept word replaced); half of each set selects synapses, the other
half (50 vs 50, the paper's test size) tests them:

- the ``--top-k`` neuron-level synapses ``sigma[l][i, j]`` (presynaptic model neurons) that grow with the
  concept (mean after concept sentences > |mean after contrast sentences|; ``--any-direction`` drops this) and
  best separate the selection sentences, each tested once on the held-out sentences with a one-sided Mann-Whitney U test
  (U of 2500, p, Bonferroni over the top-k, rank-biserial), written to ``table.md`` and ``results.json``;
- per concept, the best synapse's state token by token over a few held-out sentences, each read from a zero
  state as the test reads it (``<concept>_trace.png``), and its held-out values with the test
  (``<concept>_test.png``);
- a control on the first concept: the same sentences with the concept/contrast labels shuffled, which should
  give no significant synapse;
- sparsity of x and y over a held-out passage of the default corpus (``sparsity.png``).

    python analysis/monosemanticity.py [CHECKPOINT] --out runs/monosemanticity [--concepts currency country]

How to read it. Matched templates control for the sentence frame, not for the letters of the concept words:
a byte-level model can separate the sets by spelling alone (country and person members are capitalised, their
contrast fillers "the station", "the teacher" are not), so a significant synapse shows that the state separates
the sets, which is what the paper's test shows too, not that it encodes the concept. The test is one-sided on
the signed state; the table's medians show how far the concept raises the synapse and what the contrast does.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from bdh_graph.files import atomic_path
from bdh_graph.interpretability.monosemantic import PAPER_SENTENCES, find_concept_synapses
from bdh_graph.interpretability.sparsity import sparsity
from bdh_graph.model.checkpoints import load_model
from bdh_graph.plots.synapses import plot_concept_synapse, plot_concept_synapse_test, plot_sparsity
from bdh_graph.text import default_passage
from bdh_graph.text.concepts import CONCEPTS, matched_sentences


def shuffled_labels(concept: list[str], contrast: list[str], seed: int) -> tuple[list[str], list[str]]:
    """The same sentences with their labels permuted (set sizes kept)."""
    pool = concept + contrast
    random.Random(seed).shuffle(pool)
    return pool[:len(concept)], pool[len(concept):]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("runs/monosemanticity"))
    parser.add_argument("--concepts", nargs="+", choices=sorted(CONCEPTS), default=list(CONCEPTS))
    parser.add_argument("--sentences", type=int, default=PAPER_SENTENCES, help="sentences per set (half held out)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--any-direction", action="store_true",
                        help="also synapses that the contrast sentences push down, not only those that grow")
    parser.add_argument("--no-control", action="store_true", help="skip the shuffled-label control")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.checkpoint)
    results, lines = {}, []
    runs = [(name, *matched_sentences(name, args.sentences, args.seed)) for name in args.concepts]
    if not args.no_control:
        name, concept, contrast = runs[0]
        runs.append((f"{name}-shuffled", *shuffled_labels(concept, contrast, args.seed)))
    for label, concept, contrast in runs:
        start = time.perf_counter()
        found = find_concept_synapses(model, concept, contrast, top_k=args.top_k, alpha=args.alpha, seed=args.seed,
                                      strengthening=not args.any_direction, progress=True)
        seconds = time.perf_counter() - start
        results[label] = {**found.to_dict(), "seconds": seconds}
        if found.synapses:
            results[label]["figures"] = [
                str(plot_concept_synapse(model, found, args.out / f"{label}_trace.png", label)),
                str(plot_concept_synapse_test(found, model.config, args.out / f"{label}_test.png", label))]
        lines += [f"## {label}", "", f"{found.entries_screened:,} entries screened on "
                  f"{len(found.split.selection_concept)} vs {len(found.split.selection_contrast)} selection sentences, "
                  f"tested on {len(found.split.test_concept)} vs {len(found.split.test_contrast)} held-out "
                  f"sentences ({seconds:.0f} s).", "", "```", found.table(model.config), "```", "",
                  found.summary(model.config), ""]
        print(f"{label}: {found.summary(model.config)} [{seconds:.0f} s]", flush=True)
    stats = sparsity(model, default_passage(4096), progress=True)
    results["sparsity"] = {**stats.to_dict(), "figure": str(plot_sparsity(stats, args.out / "sparsity.png"))}
    lines += ["## sparsity", "", stats.summary(), ""]
    print(stats.summary())
    with atomic_path(args.out / "table.md") as tmp:
        tmp.write_text("# Monosemantic synapses\n\n" + "\n".join(lines))
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'table.md'}, {args.out / 'results.json'} and the figures")


if __name__ == "__main__":
    main()
