"""``bdh-graph memory``: the working-memory experiments on the graph network (``bdh_graph.experiments.memory``)."""
from __future__ import annotations


from ..distributed import engine
from ..experiments.memory import DEFAULT_STRONGEST, REPEAT_BYTES, memory_experiments
from ..plots.memory import plot_memory
from ..text import encode
from .common import (add_json_flag, add_model_argument, add_scheduler_argument, add_text_argument, count,
                     model_from_args, output_folder, positive_number, say, text_from_args, write_report)
from .network_commands import add_network_arguments, network_options

DEFAULT_BYTES = 1024  # the default text: a held-out passage of about 1 KB


def register(sub) -> None:
    p = sub.add_parser("memory", help="working-memory experiments: bits per byte with the synapses as they are, "
                                      "erased, forgetting with time constant tau, lesioned; a passage read twice")
    add_model_argument(p)
    add_text_argument(p, default_bytes=DEFAULT_BYTES)
    add_network_arguments(p, spike=False)
    p.set_defaults(wiring="hub")
    p.add_argument("--time-constants", type=positive_number, nargs="+", default=None, metavar="TAU",
                   help="the forgetting ladder in tokens (default: 1, 2, 4, ... up to twice the text's length)")
    p.add_argument("--layers", type=count(0), nargs="+", default=None, metavar="LAYER",
                   help="layers whose synapses are erased, one lesion each (default: every layer)")
    p.add_argument("--heads", type=count(0), nargs="+", default=None, metavar="HEAD",
                   help="heads whose synapses are erased in every layer, one lesion each (default: every head)")
    p.add_argument("--strongest", type=count(1), nargs="+", default=list(DEFAULT_STRONGEST), metavar="M",
                   help="erase the M strongest synapses (largest |sigma| after a full-memory reading), one lesion "
                        f"each (default: {' '.join(map(str, DEFAULT_STRONGEST))})")
    p.add_argument("--repeat-bytes", type=count(2), default=REPEAT_BYTES,
                   help="the passage read twice: the text's first this many bytes")
    p.add_argument("--out", type=output_folder, required=True,
                   help="folder for memory.json and the figures (memory_horizon.png, memory_per_byte.png, "
                        "memory_lesions.png)")
    add_scheduler_argument(p, "the readings (one task each)")
    add_json_flag(p)
    p.set_defaults(func=cmd_memory)


def cmd_memory(args) -> int:
    options = network_options(args)  # rate mode: the memory command takes no spike options
    del options["mode"]
    model = model_from_args(args)
    c = model.config
    for flag, given, top in (("--layers", args.layers, c.n_layer), ("--heads", args.heads, c.n_head)):
        bad = [v for v in given or () if v >= top]
        if bad:
            raise ValueError(f"{flag}: the model has {flag[2:]} 0..{top - 1}, got {bad}")
    text = text_from_args(args, DEFAULT_BYTES)
    n_bytes = len(encode(text))
    if n_bytes < 2:
        raise ValueError(f"--text: '{args.text}' has {n_bytes} byte; the memory experiments need at least 2 (bits "
                         "per byte are the predictions of bytes 2..n)")
    with engine(args.scheduler) as eng:
        say(f"reading {n_bytes} bytes on the {args.wiring} network ({options['backend']} on {args.device}) and the "
            f"tensor model, {eng.description}: full memory, no memory, forgetting, lesions, a passage read twice ...")
        result = memory_experiments(model, text, time_constants=args.time_constants, layers=args.layers,
                                    heads=args.heads, strongest=args.strongest, repeat_bytes=args.repeat_bytes,
                                    progress=True, scheduler=eng, **options)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: str(path) for name, path in plot_memory(result, args.out).items()}
    return write_report(args, "memory.json", result, files)
