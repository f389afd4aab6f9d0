"""``bdh-graph recall``: paired-associate memory on the graph network (``bdh_graph.experiments.recall``);
``bdh-graph recall-train``: train a model for it (``bdh_graph.model.recall_recipe``); ``bdh-graph recall-sizes``:
capacity against size, models of several sizes trained the same way."""
from __future__ import annotations

import dataclasses
import json

import torch

from ..errors import MissingExtraError
from ..experiments.recall import (DEFAULT_DISTRACTORS, DEFAULT_PAIRS, DEFAULT_TRIALS, capacity_against_size,
                                  check_recall, recall_experiments)
from ..files import atomic_path
from ..interop.nwb import write_trials_nwb
from ..model.checkpoints import load_model
from ..model.recall_recipe import (RECALL_MODEL, RECALL_NEURONS, RECALL_TASK, RECALL_TRAINING, SIZES, recall_config,
                                   train_recall)
from ..model.training import MODEL_FILE
from ..text.paired_associates import PairedAssociates
from ..plots.recall import plot_capacity_sizes, plot_recall
from .common import add_json_flag, checked, count, output_folder, print_result, say, write_report
from .network_commands import add_network_arguments, network_options


def register(sub) -> None:
    p = sub.add_parser("recall", help="paired-associate memory: study pairs (A, B), cue A, ask for B; capacity, "
                                      "forgetting, each pair's memory trace (synapses) and its lesion")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a .safetensors checkpoint of a model trained for recall (default: the bundled recall model)")
    p.add_argument("--pairs", type=count(1), default=DEFAULT_PAIRS, help="pairs P studied in a trial")
    p.add_argument("--trials", type=count(1), default=DEFAULT_TRIALS, help="trials")
    p.add_argument("--distractors", type=count(0), default=DEFAULT_DISTRACTORS,
                   help="bytes of unrelated text between the study and the cues")
    p.add_argument("--seed", type=count(0), default=0, help="seed of the trials")
    add_network_arguments(p, spike=False)
    p.set_defaults(wiring="hub")
    p.add_argument("--out", type=output_folder, required=True,
                   help="folder for recall.json, the figures and recall.nwb (with the interop extra)")
    add_json_flag(p)
    p.set_defaults(func=cmd_recall)

    t = sub.add_parser("recall-train", help="train a model for paired-associate recall (the bundled recall "
                                            "model's recipe, bdh_graph.model.recall_recipe)")
    t.add_argument("--out", type=output_folder, required=True, help="folder for model.safetensors")
    t.add_argument("--neurons", type=checked(int, recall_config), default=RECALL_NEURONS,
                   help="neurons n, a multiple of 64 (1 layer, d = 64, 4 heads)")
    t.add_argument("--steps", type=count(1), default=RECALL_TRAINING.steps, help="optimisation steps")
    add_stimuli_argument(t)
    t.set_defaults(func=cmd_recall_train)

    z = sub.add_parser("recall-sizes", help="capacity against size: train recall models of several sizes the same "
                                            "way, each one's capacity, and the power law fitted on log axes")
    z.add_argument("--out", type=output_folder, required=True,
                   help="folder for n<N>/model.safetensors of each size (a size whose folder holds a model already "
                        "is not trained again), recall_sizes.json and recall_sizes.png")
    z.add_argument("--neurons", type=checked(int, recall_config), nargs="+", default=list(SIZES), metavar="N",
                   help="the sizes, neurons n (multiples of 64)")
    z.add_argument("--steps", type=count(1), default=RECALL_TRAINING.steps, help="optimisation steps per size")
    z.add_argument("--trials", type=count(1), default=DEFAULT_TRIALS, help="trials per number of pairs")
    add_stimuli_argument(z)
    add_json_flag(z)
    z.set_defaults(func=cmd_recall_sizes)


def add_stimuli_argument(parser) -> None:
    parser.add_argument("--stimuli", type=checked(int, PairedAssociates), default=RECALL_TASK.stimuli, metavar="K",
                        help="K keys and K partners: the task's vocabulary holds K (K + 2) stimuli beside the bytes, "
                             "chance is 1/K, and training batches study 1..K pairs")


def cmd_recall(args) -> int:
    options = network_options(args)
    del options["mode"]
    model = load_model(args.checkpoint if args.checkpoint is not None else RECALL_MODEL).to(args.device)
    check_recall(model, args.pairs, args.trials, (f"checkpoint '{args.checkpoint or RECALL_MODEL}'", "--pairs",
                                                  "--trials"))
    say(f"{args.trials} trials of {args.pairs} pairs on the {args.wiring} network and the tensor model: recall, "
        "memory traces and lesions, capacity, forgetting ...")
    result = recall_experiments(model, pairs=args.pairs, trials=args.trials, seed=args.seed,
                                distractors=args.distractors, **options)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: str(path) for name, path in plot_recall(result, args.out).items()}
    try:
        files["nwb"] = str(write_trials_nwb(args.out / "recall.nwb", config=model.config, **result.nwb_trials(),
                                            session_description=f"paired-associate recall: {args.trials} trials of "
                                                                f"{args.pairs} pairs on the {args.wiring} network"))
    except MissingExtraError as err:
        say(f"recall.nwb not written: {err}")
    return write_report(args, "recall.json", result, files)


def cmd_recall_train(args) -> int:
    torch.set_num_threads(1)  # the recipe's timings are of one core
    task = PairedAssociates(args.stimuli)
    config = recall_config(args.neurons, task)
    say(f"training a recall model of {config.n_neurons} neurons for {args.steps} steps on {task.stimuli} x "
        f"{task.stimuli} stimuli into {args.out} ...")
    history = train_recall(config, args.out, dataclasses.replace(RECALL_TRAINING, steps=args.steps), task)
    print(f"held-out loss {history['held_out_loss'][-1]:.4f} nats per answer; wrote {args.out / 'model.safetensors'}")
    return 0


def cmd_recall_sizes(args) -> int:
    torch.set_num_threads(1)
    task = PairedAssociates(args.stimuli)
    models = {}
    for n in sorted(set(args.neurons)):
        folder = args.out / f"n{n}"
        if not (folder / MODEL_FILE).is_file():  # a size trained before is reused: delete its folder to retrain
            say(f"training a recall model of {n} neurons for {args.steps} steps on {task.stimuli} x {task.stimuli} "
                f"stimuli into {folder} ...")
            train_recall(recall_config(n, task), folder, dataclasses.replace(RECALL_TRAINING, steps=args.steps), task)
        models[n] = load_model(folder / MODEL_FILE)
        if models[n].config != recall_config(n, task):
            raise ValueError(f"argument --out: '{folder / MODEL_FILE}' is not a recall model of {n} neurons on "
                             f"{task.stimuli} x {task.stimuli} stimuli; delete its folder to train it, or give another "
                             "--out")
    say("capacity of each size on the tensor model ...")
    result = capacity_against_size(models, trials=args.trials)
    figure = plot_capacity_sizes(result["sizes"], result["fit"], args.out / "recall_sizes.png")
    data = {**result, "steps": args.steps, "figure": str(figure)}
    with atomic_path(args.out / "recall_sizes.json") as tmp:
        tmp.write_text(json.dumps(data, indent=2))
    fit = result["fit"]
    text = "\n".join([f"capacity (largest P recalled at 90 %) against neurons n, {args.trials} trials per P:",
                      *(f"  n = {s['neurons']}: {s['capacity_90']} pairs" for s in result["sizes"]),
                      f"  fit on log axes: capacity ~ n^{fit['slope']:.2f}" if fit["slope"] is not None
                      else "  too few sizes with a capacity above 0 and below the ceiling to fit a slope",
                      f"  wrote {figure}, {args.out / 'recall_sizes.json'}"])
    print_result(args, data, text)
    return 0
